"""The benchmark scripts still run against the versions they compare (slow: fresh processes, git history)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_finetune_fps_times_the_update_of_the_reference_and_of_this_checkout():
    """`--updates` imports the agent from wherever the version under test keeps it (the reference predates
    gsa/agents/), and prints both rows with a ratio."""
    out = subprocess.run([sys.executable, "benchmarks/finetune_fps.py", "--updates", "1", "--eager-only", "--threads", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| reference") or line.startswith("| this checkout")]
    assert len(rows) == 2, out.stdout
    assert float(rows[1].split("|")[-2].strip().rstrip("x")) > 0, rows
