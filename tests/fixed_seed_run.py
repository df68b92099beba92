"""A fixed-seed pipeline small enough for the default test run: collect a tiny dataset, pre-train a state-mode
world model for 20 steps, fine-tune ``dreamerv3`` and ``gsa`` on mw-reach for 800 frames; copy each run's
train.csv / eval.csv to ``OUT/<method>/``.

It uses only the API that existed before the online loop was factored out of ``gsa/train/finetune.py`` (issue
14), so the same script ran on the commit before that refactor (a727256) to make the reference files in
``tests/fixtures/refactor/``:

    git worktree add /tmp/ref a727256
    PYTHONPATH=/tmp/ref GSA_ROOT=/tmp/refrun python tests/fixed_seed_run.py tests/fixtures/refactor

``tests/test_refactor.py`` runs it on this checkout and compares.
"""
import shutil
import sys
from pathlib import Path

from gsa.config import preset
from gsa.data.collect import collect
from gsa.train.finetune import finetune
from gsa.train.pretrain import pretrain

SETTINGS = {
    "data.dmc_embodiments": ("cartpole",), "data.dmc_episodes": 1, "data.dmc_length": 40,
    "data.dmc_sources": ("random",), "data.mw_tasks": ("reach",), "data.mw_episodes": 2, "data.workers": 1,
    "pretrain.benchmark": "all", "pretrain.steps": 20, "pretrain.seq_len": 16, "world_model.obs": "state",
    "finetune.frames": 800, "finetune.warmup_frames": 200, "finetune.eval_every": 400,
    "finetune.eval_episodes": 1, "finetune.batch_size": 4, "finetune.seq_len": 16, "finetune.train_ratio": 16,
    "finetune.bc_steps": 20, "finetune.bc_batch_size": 8, "finetune.retrieval_k": 2,
    "finetune.checkpoint_every": 400, "finetune.units": 32, "finetune.guidance_schedule": "linear(1,0,400)",
}
METHODS = ("dreamerv3", "gsa")


def main(root: Path, out: Path) -> None:
    cfg = preset("smoke", {**SETTINGS, "data.root": str(root / "data")})
    collect(cfg.data, progress=False)
    wm = pretrain(cfg, out=root / "wm", progress=False)
    for method in METHODS:
        run = finetune(cfg, "mw-reach", method, world_model=wm, experiment="fixed-seed", progress=False)
        (out / method).mkdir(parents=True, exist_ok=True)
        for name in ("train.csv", "eval.csv"):
            shutil.copy(run / name, out / method / name)


if __name__ == "__main__":
    import os

    import torch
    torch.set_num_threads(1)  # summation order (and so every bit) depends on the thread count
    os.environ.setdefault("GSA_RESULTS_DIR", os.path.join(os.environ["GSA_ROOT"], "results"))
    main(Path(os.environ["GSA_ROOT"]), Path(sys.argv[1]).resolve())
