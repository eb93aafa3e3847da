"""User errors in the three commands end with one clear message and exit code 2, never a traceback; the
commands start quietly, say what they run on, and are installed as fashion-train/-evaluate/-infer.

Each row of ERRORS is (command, arguments, words the message must hold). ``{sample}``, ``{tmp}``, ``{weights}``
(random weights of the tiny preset without recorded classes), ``{bad_images}`` (the sample with every image
truncated after its header) are filled in per test.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fashion import evaluate, infer
from fashion import train as train_cli
from fashion.make_sample import DEFAULT_OUT as SAMPLE

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {"train": train_cli.main, "evaluate": evaluate.main, "infer": infer.main}

ERRORS = [
    # unreadable or unusable data
    (
        "train",
        "--dataset {bad_images} --preset tiny --weights none --schedule sample --epochs 1",
        ["cannot train on", "unreadable_image"],
    ),
    ("train", "--dataset {tmp}/none --preset tiny --weights none", ["train.csv"]),
    ("evaluate", "--dataset {tmp}/none --preset tiny --weights {weights}", ["train.csv"]),
    (
        "infer",
        "--weights {weights} --preset tiny {tmp}/none --out {tmp}/out",
        ["no such image file or folder"],
    ),
    ("infer", "--weights {weights} --preset tiny {tmp}/empty --out {tmp}/out", ["no images found"]),
    # empty splits
    ("train", "--dataset {sample} --preset tiny --weights none --val-split 1.0", ["val"]),
    ("train", "--dataset {sample} --preset tiny --weights none --classes cape", ["no usable images"]),
    # bad arguments
    ("train", "--dataset {sample} --preset tiny --weights none --epochs 5,2", ["--epochs 5,2"]),
    ("train", "--dataset {sample} --preset tiny --weights none --steps-per-epoch -3", ["STEPS_PER_EPOCH"]),
    (
        "evaluate",
        "--dataset {sample} --preset tiny --weights {weights} --max-instances 0",
        ["--max-instances 0"],
    ),
    (
        "infer",
        "--weights {weights} --preset tiny {sample}/train --out {tmp}/o --max-per-class unicorn=2",
        ["unicorn"],
    ),
    ("infer", "--weights coco {sample}/train --out {tmp}/out", ["needs a fashion checkpoint"]),
    ("evaluate", "--dataset {sample} --weights {tmp}", ["is a folder"]),
    ("evaluate", "--dataset {sample} --weights {tmp}/nope.h5", ["no such file"]),
    ("evaluate", "--dataset {sample} --weights last --logs {tmp}", ["no training run"]),
    # mismatched weights
    (
        "evaluate",
        "--dataset {sample} --preset tiny --classes all --weights {weights}",
        ["does not fit", "--classes"],
    ),
    (
        "infer",
        "--weights {weights} --preset tiny --classes thesis5 {sample}/train --out {tmp}/out",
        ["does not fit"],
    ),
    ("evaluate", "--dataset {sample} --preset tiny --weights {not_h5}", ["not HDF5 or corrupt", "not_h5.h5"]),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_random_weights):
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "empty").mkdir()
    bad = tmp / "bad"
    shutil.copytree(SAMPLE, bad)
    for image in (bad / "train").iterdir():
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 3])  # the header reads, the pixels do not
    (tmp / "not_h5.h5").write_text("not an HDF5 file")
    return {
        "sample": SAMPLE,
        "tmp": str(tmp),
        "weights": tiny_random_weights(0),
        "bad_images": str(bad),
        "not_h5": str(tmp / "not_h5.h5"),
    }


@pytest.mark.parametrize("command, arguments, words", ERRORS, ids=[f"{c}:{a[:40]}" for c, a, _ in ERRORS])
def test_user_error_exits_2_with_one_message(places, capsys, command, arguments, words, tmp_path):
    argv = arguments.format(**places).split() + (
        ["--logs", str(tmp_path / "logs")] if "--logs" not in arguments and command == "train" else []
    )
    assert COMMANDS[command](argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(message) == 1, err
    assert all(w in err for w in words), err


def _run_script(script: str, argv: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "fashion" / script), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=900,
    )


def test_start_up_is_quiet_and_says_what_it_runs_on(places, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(next((Path(SAMPLE) / "train").iterdir()), images)
    # The script's own process does not import fashion.testing, so it knows no "tiny" preset; the checkpoint's
    # recorded settings build the model.
    argv = ["--weights", places["weights"], str(images), "--out", str(tmp_path / "o")]
    quiet = _run_script("infer.py", [*argv, "--no-overlays"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("Running on CPU: ") or quiet.stdout.startswith("Running on GPU: "), (
        quiet.stdout
    )
    assert "oneDNN" in quiet.stdout.splitlines()[0] or "GPU" in quiet.stdout.splitlines()[0]
    tf_lines = [line for line in quiet.stderr.splitlines() if line[:1] in "IWEF" and "0000 " in line[:6]]
    assert not tf_lines and "absl::InitializeLog" not in quiet.stderr, quiet.stderr
    loud = _run_script("infer.py", [*argv, "--no-overlays", "--verbose"], tmp_path)
    assert loud.returncode == 0 and "absl::InitializeLog" in loud.stderr


def test_default_logs_folder_is_that_of_the_current_directory(places, tmp_path):
    proc = _run_script("evaluate.py", ["--dataset", SAMPLE, "--weights", "last"], tmp_path)
    assert proc.returncode == 2 and "no training run of 'fashion' in 'logs'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", ["fashion-train", "fashion-evaluate", "fashion-infer", "fashion-serve"])
def test_installed_commands(name):
    exe = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if exe is None:
        assert not os.environ.get("CI"), f"{name} is not installed: setup.py's console_scripts"
        pytest.skip(f"{name} is not installed here (pip install -e . installs it)")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "--weights" in proc.stdout
