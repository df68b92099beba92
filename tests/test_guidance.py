"""Execution guidance (method §5.6): schedules and the per-episode π_bc window."""
from __future__ import annotations

import numpy as np
import pytest

from gsa.guidance import Guidance, parse_schedule

N = 50_000
DRAWS = 20_000


@pytest.mark.parametrize("text, values", [
    ("linear(1,0,50000)", [1.0, 0.5, 0.0, 0.0]),
    ("linear(1, 0.1, 50000)", [1.0, 0.55, 0.1, 0.1]),
])
def test_linear_schedule(text, values):
    schedule = parse_schedule(text)
    assert [schedule(step) for step in (0, N // 2, N, 2 * N)] == pytest.approx(values)


def test_constant_schedule():
    assert parse_schedule("0.5")(0) == parse_schedule("0.5")(10**6) == 0.5


@pytest.mark.parametrize("text", ["", "linear(1,0)", "linear(1,0,1,150000)", "linear(a,0,10)", "lin(1,0,10)",
                                  "linear(1,0,0)", "0.5x"])
def test_bad_schedules_raise(text):
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(text)


def windows(step: int, length: int = 500, seed: int = 0) -> list[tuple[int, int] | None]:
    guidance = Guidance("linear(1,0,50000)", episode_length=length, seed=seed)
    out = []
    for _ in range(DRAWS):
        guidance.start_episode(step)
        out.append(guidance.window)
    return out


@pytest.mark.parametrize("step, p", [(0, 1.0), (12_500, 0.75), (25_000, 0.5), (40_000, 0.2), (N, 0.0), (2 * N, 0.0)])
def test_guided_fraction_follows_schedule(step, p):
    guided = np.mean([w is not None for w in windows(step)])
    assert abs(guided - p) < 4 * np.sqrt(p * (1 - p) / DRAWS) + 1e-9


@pytest.mark.parametrize("length", [500, 100])
def test_duration_and_start_are_uniform(length):
    starts, durations = np.array([w for w in windows(0, length)]).T
    allowed = [length * i // 10 for i in range(1, 11)]
    values, counts = np.unique(durations, return_counts=True)
    assert values.tolist() == allowed
    assert np.all(np.abs(counts / DRAWS - 0.1) < 4 * np.sqrt(0.1 * 0.9 / DRAWS))
    assert starts.min() == 0 and np.all(starts + durations <= length)  # window inside the episode
    for h in (allowed[0], allowed[4]):  # k ~ U{0, …, L − H}: mean (L − H)/2, both ends reached
        k = starts[durations == h]
        assert k.min() == 0 and k.max() == length - h
        assert abs(k.mean() - (length - h) / 2) < 4 * (length - h) / np.sqrt(12 * len(k))
    assert np.all(starts[durations == length] == 0)


def test_uses_prior_marks_exactly_the_window():
    guidance = Guidance("1", episode_length=100, seed=3)
    for _ in range(20):
        assert guidance.start_episode(0)
        k, h = guidance.window
        used = [t for t in range(100) if guidance.uses_prior(t)]
        assert used == list(range(k, k + h))
    guidance = Guidance("0", episode_length=100)
    assert not guidance.start_episode(0) and not any(guidance.uses_prior(t) for t in range(100))


def test_seeded():
    assert windows(20_000, seed=7)[:50] == windows(20_000, seed=7)[:50]


def test_jump_start_draws_the_guide_horizon_per_episode_from_the_papers_grid():
    """JSRL-BC (paper App. G.2): h ~ U{0, 10, …, 100}; the guide acts on the first h steps only."""
    from gsa.guidance import JumpStart

    guide = JumpStart(seed=0)
    horizons = []
    for step in range(2_000):
        guided = guide.start_episode(step)
        horizons.append(guide.horizon)
        assert guided == (guide.horizon > 0)
        assert guide.uses_prior(0) == guided and not guide.uses_prior(guide.horizon)
        assert all(guide.uses_prior(t) for t in range(guide.horizon))
    assert set(horizons) == set(range(0, 101, 10))
    counts = np.bincount(np.array(horizons) // 10, minlength=11)
    assert counts.min() > 2_000 / 11 * 0.7  # roughly uniform
    assert not JumpStart.warmup_prior
