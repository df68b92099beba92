"""A fixed-seed pipeline small enough for the default test run: collect a tiny dataset, pre-train a state-mode
world model for 20 steps, fine-tune ``dreamerv3`` and ``gsa`` on mw-reach for 800 frames; copy each run's
train.csv / eval.csv to ``OUT/<method>/``.

It uses only the API that existed before the online loop was factored out of ``gsa/train/finetune.py`` (issue
14), so the same script ran on the commit before that refactor (a727256) to make the reference files in
``tests/fixtures/refactor/<vendor_id>/`` (one per CPU vendor, which tests/test_refactor.py explains):

    git worktree add /tmp/ref a727256
    PYTHONPATH=/tmp/ref GSA_ROOT=/tmp/refrun python tests/fixed_seed_run.py tests/fixtures/refactor/AuthenticAMD

``tests/test_refactor.py`` runs it on this checkout with ``--as-before`` and compares.

Every bit of a run depends on the CPU's code paths, not only on the code: one thread (summation order), and
the kernels torch, MKL and oneDNN pick for the CPU they find (an AVX-512 machine sums in another order than
an AVX2 one; a reference made on one drifted by 3e-4 in a GSA return on another). So the script pins them to
AVX2 before torch loads, which any x86_64 CPU of the last decade has (elsewhere the variables do nothing).
"""
import os

os.environ.update(ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2,STRICT", ONEDNN_MAX_CPU_ISA="AVX2",
                  OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from gsa.config import preset  # noqa: E402
from gsa.data.collect import collect  # noqa: E402
from gsa.train.finetune import finetune  # noqa: E402
from gsa.train.pretrain import pretrain  # noqa: E402

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


def as_before() -> None:
    """Re-draw the random numbers of the throw-away ``BCPolicy`` that the code before the refactor built before
    ``train_prior`` built the one it trains (this checkout only; tests/test_refactor.py says why)."""
    import gsa.train.finetune as ft
    from gsa.bc import BCPolicy
    from gsa.envs import get_spec, mask

    train_prior = ft.train_prior

    def wrapped(cfg, retrieved, device, progress=True):
        wm = cfg.world_model
        BCPolicy(wm.action_size, mask(get_spec("mw-reach").embodiment.action_size, wm.action_size),
                 state_size=None if wm.obs == "pixels" else wm.state_size)
        return train_prior(cfg, retrieved, device, progress)
    ft.train_prior = wrapped


if __name__ == "__main__":
    torch.set_num_threads(1)
    if "--as-before" in sys.argv:
        as_before()
    os.environ.setdefault("GSA_RESULTS_DIR", os.path.join(os.environ["GSA_ROOT"], "results"))
    main(Path(os.environ["GSA_ROOT"]), Path(sys.argv[1]).resolve())
