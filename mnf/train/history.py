"""The per-epoch record of a :func:`mnf.train.fit` run (``history.json`` / ``history.csv``)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mnf.train.checkpoint import write_atomic

COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "time", "images_per_s")


@dataclass
class History:
    """Per-epoch rows with :data:`COLUMNS`; ``history["test_acc"]`` is one column as a list."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if key not in COLUMNS:
            raise KeyError(f"{key!r} is not a history column; valid: {', '.join(COLUMNS)}")
        return [row[key] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def save(self, out: str | os.PathLike) -> None:
        """Write ``out/history.json`` and ``out/history.csv``."""
        out = Path(out)
        write_atomic(out / "history.json", lambda p: p.write_text(json.dumps(self.rows, indent=1)))

        def write_csv(p: Path) -> None:
            with open(p, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)
        write_atomic(out / "history.csv", write_csv)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        """Read a ``history.json`` (a file, or the directory holding it)."""
        path = Path(path)
        return cls(json.loads((path / "history.json" if path.is_dir() else path).read_text()))

