"""Every task constructs, resets and steps in both observation modes; seeding is reproducible."""
import numpy as np
import pytest

from gsa.envs import EMBODIMENTS, TASKS, get_spec, make, tasks


def rollout(env, actions):
    obs, info = env.reset()
    frames, rewards = [obs], []
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        assert terminated is False and truncated is False
        frames.append(obs)
        rewards.append(r)
    return frames, rewards, info


def test_registry_has_the_73_tasks():
    assert len(TASKS) == 73
    assert len(tasks("dmc")) == 23 and len(tasks("metaworld")) == 50
    assert {s.domain for s in TASKS.values()} == set(EMBODIMENTS)
    assert "dmc-cheetah-run-hard" in TASKS and "mw-shelf-place" in TASKS


def test_unknown_task_suggests_close_names():
    with pytest.raises(ValueError, match="dmc-walker-backflip"):
        make("dmc-walker-backfilp")


@pytest.mark.parametrize("task", list(TASKS))
def test_task_constructs_steps_and_is_seeded(task):
    spec = get_spec(task)
    emb = spec.embodiment
    actions = np.random.default_rng(0).uniform(-1, 1, (3, emb.action_size))

    env = make(task, obs="pixels", seed=0)
    assert env.action_space.shape == (emb.action_size,)
    frames, rewards, info = rollout(env, actions)
    for f in frames:
        assert f.shape == (3, 64, 64) and f.dtype == np.uint8
    assert f.std() > 1, "blank frame"
    assert all(isinstance(r, float) and np.isfinite(r) for r in rewards)
    assert info["embodiment"] == emb.name and info["task"] == task
    assert ("success" in info) == (spec.benchmark == "metaworld")
    reset_info = env.reset(seed=0)[1]
    first_state = np.concatenate([reset_info["physics"], reset_info["task_state"]])
    env.close()

    again, rewards_again, _ = rollout(make(task, obs="pixels", seed=0), actions)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again)), "same seed, different frames"
    assert rewards == rewards_again

    state_env = make(task, obs="state", seed=1)
    obs, info = state_env.reset()
    assert obs.shape == (emb.state_size,) and obs.dtype == np.float32
    obs2, *_ = state_env.step(actions[0])
    assert obs2.shape == (emb.state_size,) and obs2.dtype == np.float32
    state = np.concatenate([info["physics"], info["task_state"]])
    assert not np.array_equal(state, first_state), "different seeds, same initial state"


def test_episode_lengths_and_step_after_end():
    for task, length in [("dmc-cartpole-balance", 500), ("mw-reach", 100)]:
        env = make(task, obs="state")
        env.reset()
        for t in range(1, length + 1):
            *_, truncated, _ = env.step(np.zeros(env.action_space.shape))
            assert truncated == (t == length)
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(env.action_space.shape))


def test_bad_action_shape_is_a_clear_error():
    env = make("dmc-walker-walk", obs="state")
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        env.step(np.zeros(4))


def test_spec_render_settings_applied():
    env = make("dmc-walker-walk")
    env.reset()
    assert env.model.vis.quality.offsamples == 0 and env.model.vis.quality.shadowsize == 512
    default = make("dmc-walker-walk", quality="default")
    default.reset()
    assert default.model.vis.quality.shadowsize != 512


def test_render_state_reproduces_the_online_frame():
    env = make("dmc-cheetah-run", seed=3)
    obs, info = env.reset()
    for _ in range(5):
        obs, *_, info = env.step(env.action_space.sample())
    stored = info["physics"]
    for _ in range(5):
        env.step(env.action_space.sample())
    assert np.array_equal(env.render_state(stored), obs)
