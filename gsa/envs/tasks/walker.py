"""Walker: walk/run backwards and backflip (method §2)."""
from dm_control.rl import control
from dm_control.suite import walker
from dm_control.utils import rewards

from gsa.envs.tasks import register, widen_floor

INF = float("inf")


def _stand_reward(physics) -> float:
    """The stock walker stand term: (3·standing + upright) / 4."""
    standing = rewards.tolerance(physics.torso_height(), bounds=(walker._STAND_HEIGHT, INF),
                                 margin=walker._STAND_HEIGHT / 2)
    upright = (1 + physics.torso_upright()) / 2
    return (3 * standing + upright) / 4


class Backward(walker.PlanarWalker):
    """Stand term × (5·move + 1)/6, move = tol(vx, (−∞, −v], margin v/2, linear, value_at_margin 0.5)."""

    def get_reward(self, physics):
        v = self._move_speed
        move = rewards.tolerance(physics.horizontal_velocity(), bounds=(-INF, -v), margin=v / 2,
                                 value_at_margin=0.5, sigmoid="linear")
        return _stand_reward(physics) * (5 * move + 1) / 6


class Backflip(walker.PlanarWalker):
    """Feet and thighs high (upside down) while moving backwards fast."""

    def get_reward(self, physics):
        xpos = physics.named.data.xpos
        feet_z = (xpos["left_foot", "z"] + xpos["right_foot", "z"]) / 2
        thigh_z = (xpos["left_thigh", "z"] + xpos["right_thigh", "z"]) / 2
        up = (3 * rewards.tolerance(feet_z, bounds=(1.1, INF), margin=0.55)
              + 2 * rewards.tolerance(thigh_z, bounds=(1.0, INF), margin=0.5)) / 5
        move = rewards.tolerance(physics.horizontal_velocity(), bounds=(-INF, -6), margin=3,
                                 value_at_margin=0.5, sigmoid="linear")
        return up * (5 * move + 1) / 6


def _env(task, time_limit, environment_kwargs):
    # Top speed 8 m/s × 25 s = 200 m backwards; a 500 m half-length floor is ample.
    xml, assets = walker.get_model_and_assets()
    physics = walker.Physics.from_xml_string(widen_floor(xml, "floor", 500), assets)
    return control.Environment(physics, task, time_limit=time_limit,
                               control_timestep=walker._CONTROL_TIMESTEP, **(environment_kwargs or {}))


def walk_backwards(time_limit=walker._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Backward(move_speed=walker._WALK_SPEED, random=random), time_limit, environment_kwargs)


def run_backwards(time_limit=walker._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Backward(move_speed=walker._RUN_SPEED, random=random), time_limit, environment_kwargs)


def backflip(time_limit=walker._DEFAULT_TIME_LIMIT, random=None, environment_kwargs=None):
    return _env(Backflip(move_speed=walker._RUN_SPEED, random=random), time_limit, environment_kwargs)


for _fn in (walk_backwards, run_backwards, backflip):
    register("walker", _fn)
