"""The one logger: rows of scalars appended to a CSV file (a run's ``train.csv`` / ``eval.csv``)."""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd


class CSVLogger:
    """Append rows to ``path``. ``resume_at(step)`` drops rows logged after the checkpoint being resumed,
    so a resumed run's log reads as if it had never stopped."""

    def __init__(self, path: str | Path, step_key: str = "step"):
        self.path, self.step_key = Path(path), step_key
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def resume_at(self, step: int) -> None:
        if self.path.exists() and self.path.stat().st_size:
            frame = pd.read_csv(self.path)
            frame[frame[self.step_key] <= step].to_csv(self.path, index=False)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)

    def log(self, row: dict) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read(self) -> pd.DataFrame:
        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
