import numpy as np
import pytest

from gsa.envs import make
from gsa.envs.vector import VectorEnv, WorkerError


def test_vector_env_matches_serial_envs():
    kwargs = [dict(task="dmc-cartpole-balance", seed=0), dict(task="mw-reach", seed=1, action_size=4)]
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 2, 4))
    with VectorEnv(kwargs) as venv:
        obs, infos = venv.reset()
        assert obs.shape == (2, 3, 64, 64) and [i["embodiment"] for i in infos] == ["cartpole", "sawyer"]
        out = [venv.step([actions[t, 0, :1], actions[t, 1]]) for t in range(4)]
    for i, k in enumerate(kwargs):
        env = make(**k)
        first, _ = env.reset()
        assert np.array_equal(first, obs[i])
        for t in range(4):
            o, r, *_ = env.step(actions[t, i, :1] if i == 0 else actions[t, i])
            assert np.array_equal(o, out[t][0][i]) and r == out[t][1][i]


def test_worker_errors_name_the_task_and_worker():
    with pytest.raises(WorkerError, match=r"worker 0 \(task 'dmc-walker-wlak'.*unknown task"):
        VectorEnv([dict(task="dmc-walker-wlak")])
    with VectorEnv([dict(task="dmc-cartpole-balance", obs="state", state_size=39),
                    dict(task="mw-reach", obs="state")]) as v:
        v.reset()
        with pytest.raises(WorkerError, match=r"worker 1 \(task 'mw-reach'.*shape \(4,\)"):
            v.step([np.zeros(1), np.zeros(2)])
