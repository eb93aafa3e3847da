"""Fault injection: kill fashion/train.py at random moments, resume each time, check nothing is lost.

    python bench/faults.py                      # 24 SIGKILLs (seeded), then a run to the end; about 1 hour
    python bench/faults.py --kills 3 --kinds checkpoint_write,after_rename,interrupt --epochs 3   # CI's

Each run trains the ``tiny`` preset on the shipped sample (2 steps per epoch, 1 validation step; the
``sample`` schedule: one stage, all layers, the learning rate decaying every epoch) and is killed with SIGKILL at a moment drawn from a seeded generator, of one of these kinds:

  mid_step          during a training step (a random delay after the step began)
  validation        during the epoch's validation
  checkpoint_write  while the epoch's checkpoint is being written (its .tmp exists, half full)
  after_rename      after the checkpoint was renamed into place, before history.csv has its row
  history_write     around the rewrite of history.csv
  final_evaluation  during the evaluation that follows the last epoch
  interrupt         Ctrl-C (SIGINT) instead of SIGKILL, during a step: the run must exit 130 without a
                    traceback, naming the last complete checkpoint and a resume command, which the next run
                    uses as printed

The next run resumes with ``--weights last`` (or starts afresh when no checkpoint was written yet). After each
kill the suite checks: every ``.h5`` reads fully (else a corrupt file); the resumed run starts after the last
complete checkpoint, in the same folder (else a bad resume); history.csv holds one row per completed epoch, in
order, no repeats, with the schedule's learning rate (only the last row may be missing, in the after_rename
window, and must be back after the resume); no ``.tmp`` is ever taken for a checkpoint. At the end one run
goes to completion and the history must have exactly one row per epoch of the schedule. It prints
``kills / corrupt files / bad resumes: N / 0 / 0`` when all is well, and exits 1 otherwise.

The moments are found from outside: the child is this script with ``--child``, which runs fashion/train.py's
``main`` with harness-only instrumentation (monkeypatched, nothing in the training code): it prints a marker
line when a step or a validation begins, before a checkpoint write and before the history row, and widens
the windows between them (each HDF5 dataset written 3 ms slower, 0.3 s before the history row) so that a
kill lands inside them. The parent reads the markers and kills after a random delay.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's mrcnn and fashion, not an installed copy
MARK = "@@faults "
KINDS = (
    "mid_step",
    "validation",
    "checkpoint_write",
    "after_rename",
    "history_write",
    "final_evaluation",
    "interrupt",
)
SIGKILL_KINDS = KINDS[:-1]
# What marker starts each kind's window, and the random delay (seconds) after it.
WINDOWS = {
    "mid_step": ("step", 0.0, 1.0),
    "validation": ("validation", 0.0, 0.5),
    "checkpoint_write": ("checkpoint", 0.02, 0.25),
    "after_rename": ("history", 0.0, 0.2),
    "history_write": ("history", 0.25, 0.35),
    "final_evaluation": ("evaluating", 0.0, 2.0),
    "interrupt": ("step", 0.0, 1.0),
}


# --------------------------------------------------------------------------------------------- child
def run_child(train_argv: list[str]) -> int:
    """fashion/train.py's main with markers on stdout (harness instrumentation only)."""
    import h5py

    import fashion.testing  # noqa: F401  (registers the tiny preset, which is not a production one)
    import fashion.train
    from mrcnn import history, model, training

    def mark(*words) -> None:
        print(MARK + " ".join(str(w) for w in words), flush=True)

    real_create = h5py.Group.create_dataset

    def slow_create(self, *args, **kwargs):
        time.sleep(0.003)
        return real_create(self, *args, **kwargs)

    h5py.Group.create_dataset = slow_create

    real_save = training.save_weights_h5

    def marked_save(network, path, *args, **kwargs):
        mark("checkpoint", path)
        return real_save(network, path, *args, **kwargs)

    training.save_weights_h5 = marked_save

    real_record = history.record_epoch

    def marked_record(path, row):
        mark("history", row["epoch"])
        time.sleep(0.3)
        return real_record(path, row)

    history.record_epoch = marked_record

    import keras

    class Markers(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            mark("step", self.epoch, batch)

        def on_test_begin(self, logs=None):
            mark("validation", self.epoch)

    real_train = model.MaskRCNN.train

    def marked_train(self, *args, custom_callbacks=None, **kwargs):
        return real_train(self, *args, custom_callbacks=[*(custom_callbacks or []), Markers()], **kwargs)

    model.MaskRCNN.train = marked_train
    return fashion.train.main(train_argv)


# --------------------------------------------------------------------------------------------- checks
def read_fully(path: Path) -> str | None:
    """None when every dataset of the .h5 reads, else what went wrong."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            for name in names:
                f[name][()]
            if "layer_names" not in f.attrs:
                return "no layer_names"
    except Exception as e:  # noqa: BLE001 - any failure to read is what is counted
        return f"{type(e).__name__}: {e}"
    return None


def schedule_rates(name: str, epochs: int) -> list[float]:
    """The learning rate of each 0-based epoch of schedule ``name`` scaled to ``epochs`` epochs."""
    from fashion.schedules import get_schedule, with_epochs

    schedule = with_epochs(get_schedule(name), epochs)
    rates, start = [], 0
    for stage in schedule:
        for epoch in range(start, stage.epochs):
            rates.append(stage.rate_at(epoch, start))
        start = stage.epochs
    return rates


class State:
    """What the log folder holds: run folders, complete checkpoints, history rows, stray .tmp files."""

    def __init__(self, logs: Path):
        from mrcnn.history import read_history
        from mrcnn.runs import run_checkpoints, run_folders

        self.runs = [Path(p) for p in run_folders(str(logs), "fashion")]
        self.checkpoints = {run: [e for e, _ in run_checkpoints(str(run))] for run in self.runs}
        with_checkpoints = [run for run in self.runs if self.checkpoints[run]]
        self.run = with_checkpoints[-1] if with_checkpoints else None
        self.runs_with_checkpoints = len(with_checkpoints)
        self.completed = max(self.checkpoints[self.run]) if self.run else 0
        self.rows = read_history(self.run / "history.csv") if self.run else []
        self.tmp = sorted(str(p.relative_to(logs)) for p in logs.rglob("*.tmp"))
        self.h5 = sorted(logs.rglob("*.h5"))


def check_history(state: State, rates: list[float], allow_missing_last: bool) -> list[str]:
    """Problems of history.csv: rows must be epochs 0..k-1 with the schedule's rates, k = completed (or
    completed - 1 when the last row may still be in the window between checkpoint and CSV)."""
    problems = []
    epochs = [r["epoch"] for r in state.rows]
    expected = list(range(state.completed))
    if epochs != expected and not (allow_missing_last and epochs == expected[:-1]):
        problems.append(f"history.csv epochs {epochs}, expected {expected}")
    for row in state.rows:
        e = row["epoch"]
        if e < len(rates) and abs(row.get("learning_rate", -1) - rates[e]) > 1e-9 * max(1.0, rates[e]):
            problems.append(f"epoch {e + 1}: learning rate {row.get('learning_rate')} != schedule {rates[e]}")
    if len(set(epochs)) != len(epochs):
        problems.append(f"history.csv repeats epochs: {epochs}")
    return problems


# --------------------------------------------------------------------------------------------- parent
def reader(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put((time.monotonic(), line))
    lines.put((time.monotonic(), None))


def start_run(train_argv: list[str], log: Path) -> tuple[subprocess.Popen, queue.Queue, list[str]]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", "--", *train_argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=reader, args=(proc.stdout, lines), daemon=True).start()
    return proc, lines, []


def marker_of(line: str) -> tuple[str, list[str]] | None:
    if line.startswith(MARK):
        words = line[len(MARK) :].split()
        return words[0], words[1:]
    if line.startswith("Evaluating "):
        return "evaluating", []
    return None


def run_until(
    proc, lines, output: list[str], kind: str | None, target_epoch: int, rng: random.Random, timeout: float
) -> tuple[str, float | None]:
    """Read the child's output; with ``kind``, kill it in that kind's window of epoch ``target_epoch`` (1-based;
    any epoch for final_evaluation). Returns (what happened: "killed", "exited", "timeout", and when)."""
    deadline = time.monotonic() + timeout
    kill_at = None
    window = WINDOWS.get(kind) if kind else None
    while True:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            proc.send_signal(signal.SIGINT if kind == "interrupt" else signal.SIGKILL)
            kill_at = None
            if kind != "interrupt":
                proc.wait()
                return "killed", now
            deadline = now + 300  # the interrupted run must exit by itself
            window = None
        if now > deadline:
            proc.kill()
            proc.wait()
            return "timeout", None
        wait = min(deadline, kill_at if kill_at is not None else deadline) - now
        try:
            _, line = lines.get(timeout=max(0.001, min(wait, 1.0)))
        except queue.Empty:
            continue
        if line is None:
            proc.wait()
            return "exited", time.monotonic()
        output.append(line)
        marker = marker_of(line)
        if window is None or kill_at is not None or marker is None or marker[0] != window[0]:
            continue
        name, words = marker
        epoch = _marker_epoch(name, words)
        if kind != "final_evaluation" and epoch != target_epoch:
            continue
        kill_at = time.monotonic() + rng.uniform(window[1], window[2])


def _marker_epoch(name: str, words: list[str]) -> int | None:
    """1-based epoch a marker is about."""
    if name in ("step", "validation", "history"):
        return int(words[0]) + 1
    if name == "checkpoint":
        match = re.search(r"_(\d{4,})\.h5$", words[0])
        return int(match.group(1)) if match else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return run_child(argv[2:] if argv[1:2] == ["--"] else argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=24, help="SIGKILLs (and SIGINTs) before the final run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="epochs of the schedule (default: kills / 2 + 2, at least 3)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to draw from (in turn)")
    p.add_argument("--work", help="folder for the logs (default: a temporary one, removed unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--run-timeout", type=float, default=900, help="seconds one run may take")
    p.add_argument(
        "--quick",
        action="store_true",
        help="no validation images (--val-split 0): no validation and no final evaluation, faster runs",
    )
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    if args.quick and {"validation", "final_evaluation"} & set(kinds):
        p.error("--quick runs have no validation and no final evaluation to kill")
    epochs = args.epochs or max(3, args.kills // 2 + 2)
    # One stage (the sample schedule: all layers, the rate decaying every epoch): one graph trace per run.
    rates = schedule_rates("sample", epochs)
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="faults_"))
    logs = work / "logs"
    data = work / "sample"
    if not data.exists():
        shutil.copytree(ROOT / "fashion" / "sample", data)
    base = [
        "--dataset", str(data), "--preset", "tiny", "--schedule", "sample", "--epochs", str(epochs),
        "--logs", str(logs), "--val-split", "0" if args.quick else "0.1", "--eval-limit", "1", "--progress", "0", "--workers", "1",
    ]  # fmt: skip
    print(
        f"Fault injection: {args.kills} kills of fashion/train.py (tiny preset, sample schedule, {epochs} epochs), "
        f"seed {args.seed}, "
        f"kinds {', '.join(kinds)}; logs in {logs}",
        flush=True,
    )

    kills = interrupts = corrupt = bad = runs = 0
    expected_resume: int | None = None  # the epoch the next run must resume after
    expected_run: Path | None = None
    weights_next: list[str] | None = None  # from an interrupted run's printed command
    problems: list[str] = []
    order = [kinds[i % len(kinds)] for i in range(args.kills)]
    rng.shuffle(order)
    # The final evaluation comes once the schedule is done: those kills go last.
    order = [k for k in order if k != "final_evaluation"] + [k for k in order if k == "final_evaluation"]
    misses = 0
    started = time.monotonic()
    seen_corrupt: set[str] = set()
    while True:
        state = State(logs)
        final = kills + interrupts >= args.kills
        kind = None if final else order[kills + interrupts]
        if weights_next is not None:
            weights = weights_next
        else:
            weights = ["--weights", "last"] if state.completed else ["--weights", "none"]
        weights_next = None
        done = state.completed
        # training kinds hit the first or the second epoch of this run
        target = done + 2 if done + 2 <= epochs and rng.random() < 0.5 else done + 1
        if kind not in (None, "final_evaluation") and done >= epochs:
            kind = "final_evaluation"  # nothing left to train in
        runs += 1
        log = work / f"run{runs:02d}.log"
        proc, lines, output = start_run(base + weights, log)
        what, when = run_until(proc, lines, output, kind, target, rng, args.run_timeout)
        log.write_text("".join(output))
        text = "".join(output)

        # the run's start: did it resume where it had to?
        resumed = re.search(r"resuming after epoch (\d+)", text)
        if expected_resume is not None and weights[1] != "none":
            got = int(resumed.group(1)) if resumed else None
            if got is not None and got != expected_resume:
                bad += 1
                problems.append(
                    f"run {runs}: resumed after epoch {got}, the last complete one is {expected_resume}"
                )
        taken = re.search(r"Weights: last checkpoint (\S+)", text)
        if taken and (taken.group(1).endswith(".tmp") or read_fully(Path(taken.group(1))) is not None):
            bad += 1
            problems.append(f"run {runs}: resumed from {taken.group(1)}, not a complete checkpoint")

        state = State(logs)
        for h5 in state.h5:
            error = read_fully(h5)
            if error and str(h5) not in seen_corrupt:
                seen_corrupt.add(str(h5))
                corrupt += 1
                problems.append(f"run {runs}: {h5} does not read fully: {error}")
        if state.runs_with_checkpoints > 1:
            bad += 1
            problems.append(f"run {runs}: {state.runs_with_checkpoints} run folders hold checkpoints")
        if expected_run is not None and state.run is not None and state.run != expected_run:
            bad += 1
            problems.append(f"run {runs}: checkpoints went to {state.run}, not the resumed {expected_run}")
        history_problems = check_history(
            state, rates, allow_missing_last=what == "killed" and kind in ("after_rename", "history_write")
        )
        if history_problems:
            bad += 1
            problems.extend(f"run {runs}: {p}" for p in history_problems)

        if what == "timeout":
            problems.append(f"run {runs}: no {kind} moment in {args.run_timeout:.0f} s (see {log})")
            bad += 1
            break
        if kind == "interrupt":
            interrupts += 1
            ok = proc.returncode == 130 and "Traceback" not in text and "\ninterrupted: " in text
            resume = re.search(r"Resume with: (.+)", text)
            if state.completed and not resume:
                ok = False
            if resume:
                command = shlex.split(resume.group(1))
                named = command[command.index("--weights") + 1]
                ok = (
                    ok
                    and state.run is not None
                    and named == str(state.run / f"mask_rcnn_fashion_{state.completed:04d}.h5")
                )
                weights_next = ["--weights", named, "--resume"]
            if not ok:
                bad += 1
                problems.append(f"run {runs}: Ctrl-C gave exit {proc.returncode}; output in {log}")
        elif what == "killed":
            kills += 1
        elif what == "exited" and not final:
            misses += 1
            print(f"run {runs}: ended (exit {proc.returncode}) before its {kind} moment; again ({log})")
            if misses >= 3:
                bad += 1
                problems.append(f"run {runs}: three runs in a row ended before their moment")
                break
        print(
            f"run {runs:2d} {('-> ' + kind) if kind else '(to the end)':<20} {what:<7} "
            f"checkpoints {state.completed}/{epochs}, history rows {len(state.rows)}, stray .tmp {len(state.tmp)}"
            f"  [{time.monotonic() - started:5.0f} s]",
            flush=True,
        )
        if what == "killed" or kind == "interrupt":
            misses = 0
        expected_resume = state.completed if state.completed else None
        expected_run = state.run
        if final:
            if what != "exited" or proc.returncode != 0:
                bad += 1
                problems.append(f"final run: {what}, exit {proc.returncode} (see {log})")
            elif state.completed != epochs or [r["epoch"] for r in state.rows] != list(range(epochs)):
                bad += 1
                problems.append(
                    f"final run: {state.completed} checkpoints, history epochs {[r['epoch'] for r in state.rows]}"
                )
            elif not args.quick and not (state.run / "metrics.json").exists():
                bad += 1
                problems.append("final run: no metrics.json")
            break

    for problem in problems:
        print("  " + problem)
    print(
        json.dumps(
            {"kills": kills, "interrupts": interrupts, "corrupt_files": corrupt, "bad_resumes": bad, "runs": runs,
             "seconds": round(time.monotonic() - started)}
        )
    )  # fmt: skip
    print(
        f"kills / corrupt files / bad resumes: {kills} / {corrupt} / {bad}"
        + (f" (and {interrupts} Ctrl-C)" if interrupts else "")
    )
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if corrupt == 0 and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
