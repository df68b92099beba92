"""gsa — Generalist world models guided by non-curated data (GSA / WPT reference implementation).

Importing the package sets headless-rendering defaults *before* MuJoCo is loaded, unless the user
chose otherwise: ``MUJOCO_GL=egl`` (works on a CPU through Mesa llvmpipe and on an NVIDIA GPU) and
``LP_NUM_THREADS=1`` (llvmpipe would otherwise spawn a thread per core in every worker process) — and
``OMP_WAIT_POLICY=PASSIVE`` before torch is loaded: idle OpenMP threads sleep instead of spinning, which
keeps torch usable when several processes share a few cores (measured: a tiny world-model step under
contention went from 34 s to 1.7 s).
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
