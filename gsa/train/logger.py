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
        """Append ``row``; a row with new keys rewrites the file with the widened header (rare: e.g. the
        first row after training starts adds the loss columns)."""
        header = self._header()
        if header and not set(row) <= set(header):
            frame = pd.concat([self.read(), pd.DataFrame([row])], ignore_index=True)
            frame.to_csv(self.path, index=False)
            return
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header or list(row), restval="")
            if not header:
                writer.writeheader()
            writer.writerow(row)

    def _header(self) -> list[str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        with open(self.path, newline="") as f:
            return next(csv.reader(f), [])

    def read(self) -> pd.DataFrame:
        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
