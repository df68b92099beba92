"""Data-parallel pre-training under torchrun on the CPU (gloo, 2 processes): the same steps as one process
at the same global batch, rank-0-only writes, resume after a kill."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gsa.config import set_field, to_dict
from gsa.models.distributions import OneHotDist
from gsa.train import checkpoint
from gsa.train.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[1]


def torchrun(config: Path, out: Path, stop_at: int | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "ddp_pretrain.py"), str(config), str(out), *([str(stop_at)] if stop_at else [])]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_take_the_steps_of_one_and_resume_after_a_kill(smoke_data, tmp_path, monkeypatch):
    cfg = copy.deepcopy(smoke_data)
    for key, value in {"world_model.obs": "state", "pretrain.steps": 6, "pretrain.batch_size": 4,
                       "pretrain.seq_len": 8, "pretrain.log_every": 2, "pretrain.checkpoint_every": 2,
                       "pretrain.loader_workers": 1}.items():
        set_field(cfg, key, value)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(to_dict(cfg)))
    # two processes, killed after step 2 (right after a checkpoint), then resumed to step 6
    torchrun(config, tmp_path / "ddp", stop_at=2)
    assert checkpoint.load(tmp_path / "ddp" / "checkpoint.pt", kind="pretrain")["step"] == 2
    torchrun(config, tmp_path / "ddp")
    # one process, the same global batch of 4 rows, uninterrupted
    monkeypatch.setattr(OneHotDist, "sample", OneHotDist.mode)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain(cfg, out=tmp_path / "one", progress=False, benchmark="all")
    finally:
        torch.set_num_threads(threads)
    ddp = checkpoint.load(tmp_path / "ddp" / "checkpoint.pt", kind="pretrain")
    one = checkpoint.load(tmp_path / "one" / "checkpoint.pt", kind="pretrain")
    assert ddp["step"] == one["step"] == 6 and len(ddp["rng_ranks"]) == 2
    for name, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    a, b = pd.read_csv(tmp_path / "ddp" / "train.csv"), pd.read_csv(tmp_path / "one" / "train.csv")
    assert a["step"].tolist() == b["step"].tolist() == [2, 4, 6]            # one writer: no duplicated rows
    for column in ("loss", "recon", "dyn", "rep"):
        assert a[column].to_numpy() == pytest.approx(b[column].to_numpy(), rel=1e-4, abs=1e-5), column
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["checkpoint.pt", "config.json", "train.csv"]


def test_global_batch_must_split_over_the_processes():
    from gsa.data.sampler import MixedSampler

    with pytest.raises(ValueError, match="split evenly"):
        MixedSampler([(None, 1.0)], 5, 8, 2, part=(0, 2))
