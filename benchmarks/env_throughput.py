"""Agent steps/s of env collection, as ratios to rendering with the model's default settings.

For walker, quadruped, cheetah and one Meta-World task, measured in one run:
  physics     state observations, no rendering
  default     64×64 pixels, the model's default render settings (the reference, ratio 1.00)
  spec        64×64 pixels, the render settings of method §2 (offsamples 0, shadowsize 512)
  vector-1/2  spec settings, 1 and 2 worker processes stepping in lockstep (gsa.envs.vector.VectorEnv)

Targets (issue 2): spec ≥ 3× default for DMC; vector-2 ≥ 1.7× one worker on 2 cores (the last
column: vector-2 / vector-1; vector-2 / in-process spec is printed too).
Run: .venv/bin/python benchmarks/env_throughput.py [--steps 200]
"""
import argparse
import time

import numpy as np

import gsa  # noqa: F401  (headless rendering defaults)
from gsa.envs import get_spec, make
from gsa.envs.vector import VectorEnv

TASKS = ["dmc-walker-walk", "dmc-quadruped-walk", "dmc-cheetah-run", "mw-reach"]


def steps_per_second(env, steps: int, rng) -> float:
    env.reset(seed=0)
    env.step(rng.uniform(-1, 1, env.action_space.shape))  # first render creates the GL context
    start = time.perf_counter()
    for _ in range(steps):
        *_, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        if truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_steps_per_second(task: str, workers: int, steps: int, rng) -> float:
    with VectorEnv([dict(task=task, seed=i) for i in range(workers)]) as venv:
        size = get_spec(task).embodiment.action_size
        venv.reset()
        start = time.perf_counter()
        for _ in range(steps):
            *_, truncated, _ = venv.step(rng.uniform(-1, 1, (workers, size)))
            if truncated.any():
                venv.reset()
        return workers * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'task':22s} {'default steps/s':>16s} {'physics':>9s} {'default':>8s} {'spec':>7s} "
          f"{'vector-1':>9s} {'vector-2':>9s} {'2 vs 1 worker':>14s}")
    for task in args.tasks:
        default = steps_per_second(make(task, quality="default"), args.steps, rng)
        physics = steps_per_second(make(task, obs="state"), args.steps * 5, rng)
        spec = steps_per_second(make(task), args.steps, rng)
        one = vector_steps_per_second(task, 1, args.steps, rng)
        two = vector_steps_per_second(task, 2, args.steps, rng)
        print(f"{task:22s} {default:16.1f} {physics / default:8.1f}x {1:7.2f}x {spec / default:6.2f}x "
              f"{one / default:8.2f}x {two / default:8.2f}x {two / one:13.2f}x   "
              f"(vector-2 / in-process spec = {two / spec:.2f})", flush=True)


if __name__ == "__main__":
    main()
