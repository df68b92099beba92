"""Custom dm_control tasks of the paper (method §2), registered into ``dm_control.suite``.

Importing this package adds them to the domains' ``SUITE`` so that ``suite.load("walker", "backflip")``
works like a stock task. Rewards follow method §2 (tasks from URLB and the NCRL code).
"""
import xml.etree.ElementTree as ET

from dm_control import suite


def widen_floor(xml: bytes | str, geom: str, half_length: float) -> bytes:
    """Centre the named floor plane at x = 0 and make it ``half_length`` long each way.

    The stock walker/cheetah floors start 2 m behind the origin, so bodies running backwards leave them;
    ``half_length`` is chosen from the top speed × episode duration (method §2, "backward tasks").
    """
    root = ET.fromstring(xml)
    floor = root.find(f".//geom[@name='{geom}']")
    size = floor.get("size").split()
    floor.set("pos", "0 0 0")
    floor.set("size", " ".join([str(half_length)] + size[1:]))
    return ET.tostring(root)


def register(domain: str, fn) -> None:
    """Add ``fn`` (named like the task) to ``suite.<domain>.SUITE`` and the suite's task lists."""
    module = getattr(suite, domain)
    if fn.__name__ not in module.SUITE:
        module.SUITE.add("custom")(fn)
        suite.ALL_TASKS = suite.ALL_TASKS + ((domain, fn.__name__),)


from gsa.envs.tasks import cheetah, quadruped, walker  # noqa: E402,F401  (registers the tasks)
