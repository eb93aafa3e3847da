"""A training run's ``history.csv``: one row per completed epoch, exact after any kill.

Columns: ``epoch`` (0-based, as Keras' ``CSVLogger`` writes it: the row of checkpoint ``..._0003.h5`` has
epoch 2), ``learning_rate`` (the optimizer's rate during that epoch), then the epoch's logs in sorted order
(``loss``, the five loss terms, ``val_*``). :func:`mrcnn.visualize.plot_training_curves` reads it.

How the file stays exact: the checkpoint of an epoch is written first and carries the epoch's row (the
``epoch_logs`` attribute, :mod:`mrcnn.metadata`); then the whole CSV is rewritten to a temporary file and
renamed over the old one. A kill between the two leaves a checkpoint whose row is missing from the CSV;
:func:`recover_history`, called when a run is resumed, puts it back from the checkpoint, and drops rows of
epochs after the checkpoint being resumed (an abandoned continuation) and repeated rows.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HISTORY_FILE", "epoch_row", "read_history", "recover_history", "record_epoch", "write_history"]

HISTORY_FILE = "history.csv"
_FIRST_COLUMNS = ("epoch", "learning_rate")


def epoch_row(epoch: int, logs: Mapping[str, Any] | None, learning_rate: float | None) -> dict[str, Any]:
    """The row of 0-based ``epoch``: its ``logs`` (floats) and ``learning_rate``."""
    row: dict[str, Any] = {"epoch": int(epoch)}
    if learning_rate is not None:
        row["learning_rate"] = float(learning_rate)
    for key, value in (logs or {}).items():
        if key in _FIRST_COLUMNS:
            continue
        try:
            row[key] = float(value)
        except (TypeError, ValueError):
            continue
    return row


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    keys = {k for row in rows for k in row}
    return [c for c in _FIRST_COLUMNS if c in keys] + sorted(keys - set(_FIRST_COLUMNS))


def _parse(value: str) -> Any:
    if value in ("", None):
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a history CSV in file order (empty cells left out); [] when the file does not exist."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = []
            for raw in csv.DictReader(f):
                row = {k: _parse(v) for k, v in raw.items() if k and v not in ("", None)}
                if isinstance(row.get("epoch"), float) and row["epoch"].is_integer():
                    row["epoch"] = int(row["epoch"])
                if isinstance(row.get("epoch"), int):
                    rows.append(row)
            return rows
    except FileNotFoundError:
        return []


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # nan, inf
    return repr(value) if isinstance(value, float) else str(value)


def write_history(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (sorted by epoch) as the whole CSV: to ``path + '.tmp'``, then renamed over ``path``."""
    path = os.fspath(path)
    rows = sorted(rows, key=lambda r: r["epoch"])
    columns = _columns(rows)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_format(row.get(c)) for c in columns])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def record_epoch(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Add the row of a completed epoch: rows of that epoch and of later ones (an abandoned continuation of
    the run) are replaced by it."""
    epoch = int(row["epoch"])
    rows = [r for r in read_history(path) if r["epoch"] < epoch]
    write_history(path, [*rows, dict(row)])


def recover_history(
    path: str | os.PathLike, completed_epochs: int, row_of_checkpoint: Callable[[int], Mapping | None]
) -> list[str]:
    """Make ``path`` hold exactly one row per epoch 0 .. completed_epochs - 1, as far as the run's files know.

    Rows of later epochs and repeats (the last one of an epoch is kept) are dropped; a missing row is taken
    from ``row_of_checkpoint(epoch)`` (the ``epoch_logs`` of that epoch's checkpoint; None when there is no
    such checkpoint or it has no row). Returns notes on what was changed (and on rows that could not be
    recovered), for the caller to show; the file is rewritten only when something changed.
    """
    rows = read_history(path)
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in rows:
        if 0 <= row["epoch"] < completed_epochs:
            by_epoch[row["epoch"]] = row
    notes = []
    dropped = len(rows) - len(by_epoch)
    if dropped:
        notes.append(f"dropped {dropped} row(s) of repeated epochs or epochs after the resumed checkpoint")
    recovered, missing = [], []
    for epoch in range(completed_epochs):
        if epoch in by_epoch:
            continue
        row = row_of_checkpoint(epoch)
        if row:
            by_epoch[epoch] = {**dict(row), "epoch": epoch}
            recovered.append(epoch)
        else:
            missing.append(epoch)
    if recovered:
        notes.append(
            f"recovered the row(s) of epoch(s) {', '.join(str(e + 1) for e in recovered)} from the "
            "checkpoint(s)"
        )
    if missing:
        notes.append(
            f"no row and no checkpoint record for epoch(s) {', '.join(str(e + 1) for e in missing)}: left out"
        )
    if dropped or recovered:
        write_history(path, list(by_epoch.values()))
    return notes
