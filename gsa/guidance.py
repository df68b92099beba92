"""Execution guidance: when the behaviour-cloning prior π_bc acts instead of π_RL (method §5.6, paper Sec. 3.3).

At each episode start π_bc is chosen with probability p(step), p a schedule over *agent* steps such as
``linear(1,0,50000)`` (DMC) or ``linear(1,0,150000)`` (Meta-World). If chosen, a duration H is drawn
uniformly from {L/10·i, i = 1..10} (L = episode length in agent steps) and a start k uniformly from
[0, L − H]; π_bc acts on agent steps k, …, k+H−1 of that episode and π_RL on the others.

    guidance = Guidance("linear(1,0,50000)", episode_length=500, seed=0)
    guidance.start_episode(step)          # at every reset; step = agent steps so far
    policy = bc if guidance.uses_prior(t) else actor   # t = agent step within the episode
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

_LINEAR = re.compile(r"linear\(([^,]+),([^,]+),([^,]+)\)")


def parse_schedule(text: str) -> Callable[[int], float]:
    """``"0.5"`` → constant; ``"linear(a,b,N)"`` → a at step 0, linearly to b at step N, b afterwards
    (DreamerV3's schedule syntax)."""
    compact = text.replace(" ", "")
    match = _LINEAR.fullmatch(compact)
    try:
        if match is None:
            value = float(compact)
            return lambda step: value
        initial, final, duration = (float(g) for g in match.groups())
    except ValueError:
        raise ValueError(f"bad schedule {text!r}: expected a number or linear(initial, final, steps), "
                         "e.g. linear(1,0,50000)") from None
    if duration <= 0:
        raise ValueError(f"bad schedule {text!r}: the number of steps must be positive")

    def schedule(step: int) -> float:
        mix = min(max(step / duration, 0.0), 1.0)
        return (1 - mix) * initial + mix * final

    return schedule


class Guidance:
    """Per-episode choice of the π_bc window (method §5.6); seeded, pure numpy."""

    warmup_prior = True  # π_bc also collects the whole warm-up (paper Alg. 1)

    def __init__(self, schedule: str | Callable[[int], float], episode_length: int, seed: int = 0):
        self.probability = parse_schedule(schedule) if isinstance(schedule, str) else schedule
        self.length = episode_length
        self.rng = np.random.default_rng(seed)
        self.window: tuple[int, int] | None = None  # (k, H) of the current episode, None: π_RL only

    def start_episode(self, step: int) -> bool:
        """Decide this episode's window at agent step ``step`` of training; True if π_bc will act."""
        p = self.probability(step)
        if not 0 <= p <= 1:
            raise ValueError(f"guidance probability {p} at step {step} is outside [0, 1]")
        self.window = None
        if self.rng.random() < p:
            duration = self.length * int(self.rng.integers(1, 11)) // 10
            start = int(self.rng.integers(0, self.length - duration + 1))
            self.window = (start, duration)
        return self.window is not None

    def uses_prior(self, t: int) -> bool:
        """Whether agent step ``t`` (0-based, within the current episode) is acted by π_bc."""
        return self.window is not None and self.window[0] <= t < self.window[0] + self.window[1]


class JumpStart:
    """JSRL-BC's guide (paper App. G.2): at each episode start a horizon h is drawn uniformly from
    ``horizons`` (agent steps; the paper's ``np.arange(0, 101, 10)``); π_bc acts on steps 0 … h − 1 and the
    learner afterwards. The warm-up is the learner's own (uniform actions after the guide's steps)."""

    warmup_prior = False

    def __init__(self, horizons: tuple[int, ...] = tuple(range(0, 101, 10)), seed: int = 0):
        self.horizons = np.asarray(horizons, np.int64)
        self.rng = np.random.default_rng(seed)
        self.horizon = 0

    def start_episode(self, step: int) -> bool:
        self.horizon = int(self.rng.choice(self.horizons))
        return self.horizon > 0

    def uses_prior(self, t: int) -> bool:
        return t < self.horizon
