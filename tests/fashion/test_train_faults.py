"""fashion/train.py killed and resumed: the short version of ``bench/faults.py`` (one SIGKILL during a checkpoint
write, one between a checkpoint's rename and its history row, one Ctrl-C in the middle of a step, then a run to the
end).

The checks are the bench's: every ``.h5`` reads fully, each run resumes after the last complete checkpoint in
the same folder, history.csv has one row per epoch with the schedule's learning rate (the row lost to the kill
recovered from its checkpoint), Ctrl-C exits 130 without a traceback and prints a resume command that works.
Four runs of the tiny preset without validation, so slow: the two SIGKILL kinds alone (3 runs) took 88 s of
CPU (user+sys) and 159 s wall under load, 2026-11-30; a run with nothing left to train (importing TensorFlow,
loading the sample, building the model) took 24 s wall of that, one that trains an epoch or two 65 s. CI checks
the pieces in seconds (tests/mrcnn/test_history.py: the row recovered from its checkpoint;
test_training_faults.py: the callbacks under a diverging loss and a lost Ctrl-C; test_train.py: the resume), and
CI runs the cheapest real kill: one SIGKILL in the middle of a checkpoint write, then a run to the end (two runs,
50 s of CPU, 51 s wall beside another test run, 2026-11-30).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _faults(tmp_path, *argv: str, timeout: float) -> str:
    """bench/faults.py's output for ``argv`` (seed 0, logs under tmp_path); fails unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "faults.py"), *argv, "--seed", "0", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_killed_and_interrupted_training_resumes_without_losing_anything(tmp_path):
    kinds = "checkpoint_write,after_rename,interrupt"
    out = _faults(tmp_path, "--kills", "3", "--kinds", kinds, "--epochs", "3", "--quick", timeout=1800)
    assert "kills / corrupt files / bad resumes: 2 / 0 / 0 (and 1 Ctrl-C)" in out, out


def test_a_kill_during_a_checkpoint_write_leaves_no_checkpoint_that_is_not_whole(tmp_path):
    """CI's fault run: SIGKILL while the first checkpoint's .tmp is half written; the next run never takes that
    .tmp for a checkpoint, trains to the end and leaves one readable checkpoint and one history row."""
    out = _faults(
        tmp_path, "--kills", "1", "--kinds", "checkpoint_write", "--epochs", "1", "--quick", timeout=900
    )
    assert "checkpoint_write  killed" in out, out
    assert "kills / corrupt files / bad resumes: 1 / 0 / 0" in out, out
