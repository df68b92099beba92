"""Multi-embodiment padding: padded action dims have no effect and stay exactly zero."""
import numpy as np
import pytest

from gsa.envs import mask, make, pad, unpad


def test_pad_unpad_roundtrip_and_mask():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = pad(a, 5)
    assert p.shape == (2, 5) and np.all(p[:, 3:] == 0) and np.array_equal(unpad(p, 3), a)
    assert mask(3, 5).tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError):
        pad(np.zeros(6), 4)


@pytest.mark.parametrize("task", ["dmc-walker-walk", "mw-push"])
def test_padded_action_dims_have_no_effect(task):
    rng = np.random.default_rng(0)
    clean, noisy = make(task, obs="state", action_size=12), make(task, obs="state", action_size=12)
    native = clean.native_action
    obs_c, _ = clean.reset()
    obs_n, _ = noisy.reset()
    for _ in range(5):
        a = np.zeros(12, np.float32)
        a[:native] = rng.uniform(-1, 1, native)
        junk = a.copy()
        junk[native:] = rng.normal(0, 5, 12 - native)
        obs_c, r_c, *_, info_c = clean.step(a)
        obs_n, r_n, *_, info_n = noisy.step(junk)
        assert np.array_equal(obs_c, obs_n) and r_c == r_n
        assert np.all(info_n["action"][native:] == 0) and np.array_equal(info_n["action"], info_c["action"])
        assert info_n["action_mask"].tolist() == [1] * native + [0] * (12 - native)


def test_state_padding():
    env = make("dmc-cheetah-run", obs="state", state_size=78)
    obs, _ = env.reset()
    assert obs.shape == (78,) and np.all(obs[17:] == 0)
