"""Quadruped: stand, jump, roll, roll-fast from a random initial orientation (URLB tasks, method §2).

``quadruped.Move`` already starts each episode from a uniformly random orientation at a
non-contacting height; these tasks only change the reward.
"""
import numpy as np
from dm_control.rl import control
from dm_control.suite import common, quadruped
from dm_control.utils import rewards

from gsa.envs.tasks import register

INF = float("inf")


def upright(physics) -> float:
    """tol(torso zz, [1, ∞), margin 2, linear, value_at_margin 0): 1 upright, 0 upside down."""
    return rewards.tolerance(physics.torso_upright(), bounds=(1, INF), margin=2, value_at_margin=0,
                             sigmoid="linear")


class Stand(quadruped.Move):
    def __init__(self, random=None):
        super().__init__(desired_speed=0.0, random=random)

    def get_reward(self, physics):
        return upright(physics)


class Jump(Stand):
    def get_reward(self, physics):
        com_z = physics.named.data.sensordata["center_of_mass"][2]
        return upright(physics) * rewards.tolerance(com_z, bounds=(1, INF), margin=1, value_at_margin=0.5,
                                                    sigmoid="linear")


class Roll(Stand):
    def __init__(self, speed: float, random=None):
        super().__init__(random=random)
        self._roll_speed = speed

    def get_reward(self, physics):
        v = self._roll_speed
        speed = np.linalg.norm(physics.torso_velocity())
        return upright(physics) * rewards.tolerance(speed, bounds=(v, INF), margin=v, value_at_margin=0.5,
                                                    sigmoid="linear")


def _env(task, time_limit, environment_kwargs):
    xml = quadruped.make_model(floor_size=quadruped._DEFAULT_TIME_LIMIT * quadruped._WALK_SPEED)
    physics = quadruped.Physics.from_xml_string(xml, common.ASSETS)
    return control.Environment(physics, task, time_limit=time_limit,
                               control_timestep=quadruped._CONTROL_TIMESTEP, **(environment_kwargs or {}))


def stand(time_limit=quadruped._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Stand(random=random), time_limit, environment_kwargs)


def jump(time_limit=quadruped._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Jump(random=random), time_limit, environment_kwargs)


def roll(time_limit=quadruped._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Roll(speed=0.5, random=random), time_limit, environment_kwargs)


def roll_fast(time_limit=quadruped._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Roll(speed=5.0, random=random), time_limit, environment_kwargs)


for _fn in (stand, jump, roll, roll_fast):
    register("quadruped", _fn)
