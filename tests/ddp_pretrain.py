"""Run by tests/test_ddp.py under torchrun: pre-training with DDP (gloo on CPUs), latents taken at their mode
so that runs with different process counts are comparable step for step.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_pretrain.py CONFIG.json OUT [STOP_AT]
"""
import json
import sys

import gsa  # noqa: F401  (headless defaults before torch / MuJoCo)
import torch

from gsa.config import from_dict
from gsa.models.distributions import OneHotDist
from gsa.train.pretrain import pretrain

OneHotDist.sample = OneHotDist.mode
torch.set_num_threads(1)
cfg = from_dict(json.loads(open(sys.argv[1]).read()))
pretrain(cfg, out=sys.argv[2], progress=False, stop_at=int(sys.argv[3]) if len(sys.argv) > 3 else None, benchmark="all")
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
