"""Cheetah: run backwards, run on the front / back legs, jump (method §2)."""
from dm_control.rl import control
from dm_control.suite import cheetah
from dm_control.utils import rewards

from gsa.envs.tasks import register, widen_floor

INF = float("inf")


def _lifted_run(physics, lifted_foot: str) -> float:
    xpos = physics.named.data.xpos
    up = (3 * rewards.tolerance(xpos[lifted_foot, "z"], bounds=(1.2, INF), margin=0.6)
          + 2 * rewards.tolerance(xpos["torso", "z"], bounds=(1.2, INF), margin=0.6)) / 5
    run = rewards.tolerance(physics.speed(), bounds=(6, INF), margin=6, value_at_margin=0,
                            sigmoid="linear")
    return up * (5 * run + 1) / 6


class RunBackwards(cheetah.Cheetah):
    def get_reward(self, physics):
        return rewards.tolerance(physics.speed(), bounds=(-INF, -8), margin=8, value_at_margin=0,
                                 sigmoid="linear")


class RunFront(cheetah.Cheetah):
    """Run forward on the front legs: the *back* foot is lifted."""

    def get_reward(self, physics):
        return _lifted_run(physics, "bfoot")


class RunBack(cheetah.Cheetah):
    """Run forward on the back legs: the *front* foot is lifted."""

    def get_reward(self, physics):
        return _lifted_run(physics, "ffoot")


class Jump(cheetah.Cheetah):
    """Mean over feet f of (5·tol((torso z + f z)/2 ≥ 1.2) + tol(|speed| ≤ 0.5)) / 6."""

    def get_reward(self, physics):
        xpos = physics.named.data.xpos
        still = rewards.tolerance(physics.speed(), bounds=(-0.5, 0.5), margin=0.5, value_at_margin=0,
                                  sigmoid="linear")
        height = [rewards.tolerance((xpos["torso", "z"] + xpos[f, "z"]) / 2, bounds=(1.2, INF), margin=0.6)
                  for f in ("bfoot", "ffoot")]
        return sum((5 * h + still) / 6 for h in height) / 2


def _env(task, time_limit, environment_kwargs):
    # Top speed ~15 m/s × 10 s; a 300 m half-length floor keeps the body on it either way.
    xml, assets = cheetah.get_model_and_assets()
    physics = cheetah.Physics.from_xml_string(widen_floor(xml, "ground", 300), assets)
    return control.Environment(physics, task, time_limit=time_limit, **(environment_kwargs or {}))


def run_backwards(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(RunBackwards(random=random), time_limit, environment_kwargs)


def run_front(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(RunFront(random=random), time_limit, environment_kwargs)


def run_back(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(RunBack(random=random), time_limit, environment_kwargs)


def jump(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Jump(random=random), time_limit, environment_kwargs)


for _fn in (run_backwards, run_front, run_back, jump):
    register("cheetah", _fn)
