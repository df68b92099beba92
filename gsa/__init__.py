"""gsa — Generalist world models guided by non-curated data (GSA / WPT reference implementation).

Importing the package sets headless-rendering defaults *before* MuJoCo is loaded, unless the user
chose otherwise: ``MUJOCO_GL=egl`` (works on a CPU through Mesa llvmpipe and on an NVIDIA GPU) and
``LP_NUM_THREADS=1`` (llvmpipe would otherwise spawn a thread per core in every worker process).
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")

__version__ = "0.1.0"
