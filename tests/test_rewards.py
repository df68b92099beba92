"""Custom rewards of method §2 on crafted physics states, against formulas written out here.

`tol` below is an independent re-implementation of dm_control's `rewards.tolerance` for the two
sigmoids the formulas use, so these tests check the task code, not dm_control against itself.
"""
import numpy as np
import pytest

from gsa.envs import make
from gsa.envs.dmc import DMCEnv

INF = np.inf


def tol(x, lo, hi, margin, sigmoid="gaussian", vm=0.1):
    if lo <= x <= hi:
        return 1.0
    d = (lo - x if x < lo else x - hi) / margin
    if sigmoid == "gaussian":
        return float(np.exp(-0.5 * (d * np.sqrt(-2 * np.log(vm))) ** 2))
    return float(max(0.0, 1 - d * (1 - vm)))  # linear


def crafted(task, qpos=None, qvel=None):
    env = make(task, obs="state", seed=0)
    env.reset()
    physics = env.physics
    with physics.reset_context():
        for name, value in (qpos or {}).items():
            physics.named.data.qpos[name] = value
        for name, value in (qvel or {}).items():
            physics.named.data.qvel[name] = value
    return physics, env._env.task.get_reward(physics)


def z(physics, body):
    return physics.named.data.xpos[body, "z"]


def vx(physics):
    return physics.named.data.sensordata["torso_subtreelinvel"][0]


def walker_stand(physics):
    height = physics.named.data.xpos["torso", "z"]
    upright = physics.named.data.xmat["torso", "zz"]
    return (3 * tol(height, 1.2, INF, 0.6) + (1 + upright) / 2) / 4


def test_walker_backflip_lifted_upside_down_moving_backwards():
    physics, reward = crafted("dmc-walker-backflip", {"rootz": 1.6, "rooty": np.pi}, {"rootx": -5.0})
    feet = (z(physics, "left_foot") + z(physics, "right_foot")) / 2
    thighs = (z(physics, "left_thigh") + z(physics, "right_thigh")) / 2
    up = (3 * tol(feet, 1.1, INF, 0.55) + 2 * tol(thighs, 1.0, INF, 0.5)) / 5
    move = tol(vx(physics), -INF, -6, 3, "linear", 0.5)
    assert feet > thighs > 1.0 and vx(physics) < -4  # the crafted state is what we meant
    assert reward == pytest.approx(up * (5 * move + 1) / 6, rel=1e-6)
    assert reward > 0.5
    _, upright_reward = crafted("dmc-walker-backflip", {"rootz": 0.0}, {"rootx": -5.0})
    assert upright_reward < reward - 0.2  # upright, the feet are low


@pytest.mark.parametrize("task, speed", [("dmc-walker-walk-backwards", 1.0), ("dmc-walker-run-backwards", 8.0)])
def test_walker_backwards(task, speed):
    for v in [-1.5 * speed, -0.75 * speed, 0.5]:
        physics, reward = crafted(task, {"rootz": 0.1}, {"rootx": v})
        move = tol(vx(physics), -INF, -speed, speed / 2, "linear", 0.5)
        assert reward == pytest.approx(walker_stand(physics) * (5 * move + 1) / 6, rel=1e-6)
    assert crafted(task, {"rootz": 0.1}, {"rootx": -1.5 * speed})[1] > crafted(task, {"rootz": 0.1}, {"rootx": 0.5})[1]


def test_cheetah_run_backwards():
    for v, expected in [(-10.0, 1.0), (-4.0, 0.5), (3.0, 0.0)]:
        physics, reward = crafted("dmc-cheetah-run-backwards", qvel={"rootx": v})
        assert reward == pytest.approx(tol(vx(physics), -INF, -8, 8, "linear", 0.0), abs=1e-9)
        assert reward == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("task, lifted", [("dmc-cheetah-run-front", "bfoot"), ("dmc-cheetah-run-back", "ffoot")])
def test_cheetah_lifted_runs(task, lifted):
    tilt = -0.9 if lifted == "bfoot" else 0.9  # rooty > 0 pitches the nose down, lifting the back
    physics, reward = crafted(task, {"rootz": 0.6, "rooty": -tilt}, {"rootx": 4.0})
    up = (3 * tol(z(physics, lifted), 1.2, INF, 0.6) + 2 * tol(z(physics, "torso"), 1.2, INF, 0.6)) / 5
    run = tol(vx(physics), 6, INF, 6, "linear", 0.0)
    assert reward == pytest.approx(up * (5 * run + 1) / 6, rel=1e-6)
    other = "ffoot" if lifted == "bfoot" else "bfoot"
    assert z(physics, lifted) > z(physics, other)
    mirrored = crafted(task, {"rootz": 0.6, "rooty": tilt}, {"rootx": 4.0})[1]
    assert reward > mirrored  # lifting the wrong foot earns less


def test_cheetah_jump():
    physics, reward = crafted("dmc-cheetah-jump", {"rootz": 0.8}, {"rootx": 0.7})
    still = tol(vx(physics), -0.5, 0.5, 0.5, "linear", 0.0)
    terms = [(5 * tol((z(physics, "torso") + z(physics, f)) / 2, 1.2, INF, 0.6) + still) / 6
             for f in ("bfoot", "ffoot")]
    assert reward == pytest.approx(np.mean(terms), rel=1e-6)
    assert reward > crafted("dmc-cheetah-jump", {"rootz": 0.0}, {"rootx": 0.7})[1]


def quadruped(task, quat, height=0.6, velocity=(0, 0, 0)):
    qpos = {"root": np.concatenate([[0, 0, height], quat])}
    qvel = {"root": np.concatenate([velocity, [0, 0, 0]])}
    return crafted(task, qpos, qvel)


UPSIDE_DOWN = [0, 1, 0, 0]  # 180° about x
SIDEWAYS = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0]  # 90° about x


def test_quadruped_stand_upright_sideways_upside_down():
    for quat, expected in [([1, 0, 0, 0], 1.0), (SIDEWAYS, 0.5), (UPSIDE_DOWN, 0.0)]:
        physics, reward = quadruped("dmc-quadruped-stand", quat)
        zz = physics.named.data.xmat["torso", "zz"]
        assert reward == pytest.approx(tol(zz, 1, INF, 2, "linear", 0.0), abs=1e-9)
        assert reward == pytest.approx(expected, abs=1e-6)


def test_quadruped_jump():
    for height in [0.5, 1.5]:
        physics, reward = quadruped("dmc-quadruped-jump", SIDEWAYS, height)
        com = physics.named.data.subtree_com["torso", "z"]
        upright = tol(physics.named.data.xmat["torso", "zz"], 1, INF, 2, "linear", 0.0)
        assert reward == pytest.approx(upright * tol(com, 1, INF, 1, "linear", 0.5), rel=1e-6)
    assert quadruped("dmc-quadruped-jump", UPSIDE_DOWN, 1.5)[1] == 0.0


@pytest.mark.parametrize("task, speed", [("dmc-quadruped-roll", 0.5), ("dmc-quadruped-roll-fast", 5.0)])
def test_quadruped_roll(task, speed):
    for v in [(0.1, 0, 0), (0, 0.5 * speed, 0), (speed, speed, 0)]:
        physics, reward = quadruped(task, [1, 0, 0, 0], 1.0, v)
        norm = np.linalg.norm(physics.named.data.sensordata["velocimeter"])
        assert norm == pytest.approx(np.linalg.norm(v), rel=1e-6)
        assert reward == pytest.approx(tol(norm, speed, INF, speed, "linear", 0.5), rel=1e-6)


def test_quadruped_starts_in_random_orientations():
    env = make("dmc-quadruped-stand", obs="state", seed=0)
    ups = [env.reset()[1] and env.physics.named.data.xmat["torso", "zz"] for _ in range(30)]
    assert min(ups) < 0 < max(ups)


def test_hard_wrapper_threshold_and_action_penalty():
    env = make("dmc-walker-walk-hard", obs="state")
    a = np.full(6, 0.5)
    penalty = 0.1 * np.linalg.norm(a)
    assert env._reward(0.7, a) == pytest.approx(0.7 - penalty)
    assert env._reward(0.59, a) == pytest.approx(-penalty)
    assert make("dmc-cheetah-run-hard")._reward(0.25, a) == pytest.approx(0.25 - penalty)  # cheetah: 0.2


def test_hard_wrapper_applies_per_simulator_step_before_action_repeat():
    rng = np.random.default_rng(0)
    hard = make("dmc-acrobot-swingup-hard", obs="state", action_repeat=2, seed=4)
    base = make("dmc-acrobot-swingup", obs="state", action_repeat=1, seed=4)
    assert isinstance(hard, DMCEnv) and hard.task_spec.hard_threshold == 0.6
    hard.reset(), base.reset()
    for _ in range(20):
        a = rng.uniform(-1, 1, 1)
        r_hard = hard.step(a)[1]
        sub = [base.step(a)[1] for _ in range(2)]
        expected = sum((r if r >= 0.6 else 0.0) - 0.1 * abs(a[0]) for r in sub)
        assert r_hard == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("task, floor, distance", [
    ("dmc-walker-run-backwards", "floor", 8 * 25 * 1.5),   # 1.5 × (top speed × episode duration)
    ("dmc-walker-backflip", "floor", 8 * 25 * 1.5),
    ("dmc-cheetah-run-backwards", "ground", 15 * 10 * 1.5),
])
def test_floor_is_large_enough_for_backward_tasks(task, floor, distance):
    physics = make(task, obs="state").physics
    x, half = physics.named.model.geom_pos[floor, "x"], physics.named.model.geom_size[floor][0]
    assert x - half <= -distance and x + half >= distance
