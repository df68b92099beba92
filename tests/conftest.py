import gsa  # noqa: F401  (sets MUJOCO_GL / LP_NUM_THREADS before any test module imports MuJoCo)
