"""history.csv: one row per completed epoch with the learning rate, rewritten atomically, recovered on resume."""

import csv
import math

import pytest

from mrcnn.history import epoch_row, read_history, record_epoch, recover_history, write_history


def _row(epoch, loss=1.0, lr=0.01):
    return epoch_row(epoch, {"loss": loss, "val_loss": loss + 1, "rpn_class_loss": loss / 2}, lr)


def test_rows_have_epoch_learning_rate_then_sorted_logs(tmp_path):
    path = tmp_path / "history.csv"
    record_epoch(path, _row(0, 2.0, 0.01))
    record_epoch(path, _row(1, 1.5, 0.005))
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header == ["epoch", "learning_rate", "loss", "rpn_class_loss", "val_loss"]
        assert [row[:2] for row in reader] == [["0", "0.01"], ["1", "0.005"]]
    rows = read_history(path)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["learning_rate"] == 0.005 and rows[1]["loss"] == 1.5
    assert not list(tmp_path.glob("*.tmp"))


def test_recording_an_epoch_replaces_it_and_drops_later_rows(tmp_path):
    path = tmp_path / "history.csv"
    for epoch in range(4):
        record_epoch(path, _row(epoch, loss=10.0 + epoch))
    # A run resumed from epoch 2's checkpoint redoes epoch 2 (0-based): rows 2 and 3 of the old attempt go.
    record_epoch(path, _row(2, loss=0.5))
    rows = read_history(path)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[2]["loss"] == 0.5


def test_recover_restores_a_row_lost_between_checkpoint_and_csv(tmp_path):
    path = tmp_path / "history.csv"
    record_epoch(path, _row(0, 3.0))
    record_epoch(path, _row(1, 2.0))
    # killed after checkpoint 3 was renamed into place, before its row was written
    saved = {2: _row(2, 1.0, 0.001)}
    notes = recover_history(path, 3, saved.get)
    assert [r["epoch"] for r in read_history(path)] == [0, 1, 2]
    assert read_history(path)[2]["learning_rate"] == 0.001
    assert any("recovered" in n and "3" in n for n in notes)
    assert recover_history(path, 3, saved.get) == []  # exact now: nothing to change


def test_recover_drops_repeats_and_epochs_after_the_resumed_checkpoint(tmp_path):
    path = tmp_path / "history.csv"
    # What Keras' CSVLogger in append mode left after a killed run and a rerun in the same folder.
    write_history(path, [_row(0), _row(1), _row(2)])
    with open(path, "a") as f:
        f.write("0,0.01,9.0,4.5,10.0\n3,0.01,1.0,0.5,2.0\n")
    notes = recover_history(path, 2, lambda epoch: None)
    assert [r["epoch"] for r in read_history(path)] == [0, 1]
    assert any("dropped" in n for n in notes)


def test_recover_says_which_rows_cannot_be_recovered(tmp_path):
    path = tmp_path / "history.csv"
    record_epoch(path, _row(0))
    notes = recover_history(path, 3, lambda epoch: None)
    assert any("epoch(s) 2, 3" in n for n in notes)
    assert [r["epoch"] for r in read_history(path)] == [0]


def test_non_finite_values_round_trip(tmp_path):
    path = tmp_path / "history.csv"
    record_epoch(path, epoch_row(0, {"loss": 1.0, "val_loss": float("nan")}, 0.01))
    (row,) = read_history(path)
    assert math.isnan(row["val_loss"])


@pytest.mark.parametrize("logs", [None, {}, {"loss": "n/a"}])
def test_epoch_row_keeps_only_numbers(logs):
    assert epoch_row(4, logs, None) == {"epoch": 4}
