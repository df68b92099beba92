"""``python -m gsa.experiments.worker``: a sweep worker process that executes runs one after the other.

It reads runs from stdin, one JSON line each (``{"run": {...}, "log": path}``), executes each under its
lock (``run_one``) with stdout and stderr redirected to that run's log file, and answers one line on its
original stdout: ``done``, ``busy`` (another process holds the run's lock) or ``error``. It exits at the end
of stdin — after a killed runner, once its current run is finished (the lock keeps it from running twice).

Runs in one process share what ``torch.compile`` built: the cpu preset's compile of the update (11–13
minutes on 2 cores) happens once per worker, not once per run.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import gsa  # noqa: F401  (headless rendering defaults before MuJoCo loads)


def serve(lines, answer) -> None:
    import torch

    from gsa.experiments.sweep import Run, run_one

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    for line in lines:
        message = json.loads(line)
        fields = message["run"]
        fields["overrides"] = tuple((k, v) for k, v in fields["overrides"])
        with open(message["log"], "ab", buffering=0) as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                outcome = run_one(Run(**fields))
            except Exception:
                traceback.print_exc()
                outcome = "error"
            sys.stdout.flush(), sys.stderr.flush()
        answer.write(outcome + "\n")
        answer.flush()


if __name__ == "__main__":
    channel = os.fdopen(os.dup(1), "w")  # answers go to the runner; the runs' own output to their logs
    try:
        serve(sys.stdin, channel)
    except BrokenPipeError:  # the runner is gone
        pass
