"""``python -m gsa.experiments.worker '<run as JSON>'``: one run of a sweep, in its own process.

Exit codes: 0 done, 75 another process holds the run's lock (the runner waits and retries), 1 an error
(its traceback is the last thing in the run's log)."""
from __future__ import annotations

import json
import sys

import gsa  # noqa: F401  (headless rendering defaults before MuJoCo loads)


def main(argv: list[str]) -> int:
    import torch

    from gsa.experiments.sweep import BUSY, Run, run_one

    fields = json.loads(argv[0])
    fields["overrides"] = tuple((k, v) for k, v in fields["overrides"])
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    return BUSY if run_one(Run(**fields)) == "busy" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
