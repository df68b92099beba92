import gsa  # noqa: F401  (sets MUJOCO_GL / LP_NUM_THREADS before any test module imports MuJoCo)

import pytest


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models gain nothing from two, crawl when the cores are shared (two
    OpenMP threads on a busy 2-core machine made test_actor_critic 30x slower), and the summation order (so
    bit-exact results) depends on the thread count. Modules use it with ``pytestmark``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """A small real dataset (cartpole, walker, Meta-World reach), collected once per test session."""
    from gsa.config import preset
    from gsa.data.collect import collect

    overrides = {"data.root": str(tmp_path_factory.mktemp("smoke_data") / "data"),
                 "data.dmc_embodiments": ("cartpole", "walker"), "data.dmc_episodes": 2, "data.dmc_length": 40,
                 "data.dmc_sources": ("random", "ou"),
                 "data.mw_tasks": ("reach",), "data.mw_episodes": 2, "data.workers": 2,
                 "pretrain.benchmark": "all"}  # one model for both benchmarks; tests of "each" set it
    cfg = preset("smoke", overrides)
    collect(cfg.data, progress=False)
    return cfg


@pytest.fixture(autouse=True, scope="module")
def no_orphan_workers():
    """Stop sweep workers this test process started and left behind. By design a worker finishes its run after
    its runner dies (``gsa.experiments.worker``); inside a test the runner "dies" only by an exception (e.g. a
    pytest-timeout), and its worker would go on running a smoke run in a deleted tmp dir after the session."""
    yield
    import os
    import signal
    from pathlib import Path

    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if not children.exists():  # not Linux: nothing to look at
        return
    for pid in children.read_text().split():
        try:
            if b"gsa.experiments.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError):  # it ended on its own meanwhile
            pass
