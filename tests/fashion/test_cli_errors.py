"""User errors in the three commands end with one clear message and exit code 2, never a traceback, before any
slow work where the argument can be checked; bad input files the user wants skipped are skipped with one warning
each and counted; the commands start quietly, say what they run on, and are installed as
fashion-train/-evaluate/-infer.

Each row of ERRORS is (command, arguments, words the output must hold, skips): skips None for a user error
(exit 2, exactly one "error: " line, the words in it; when the first word names an option, before TensorFlow
starts); a number for a run that goes on without the bad files
(exit 0, that many files skipped, each named once, the words in the output). ``{sample}``, ``{tmp}``,
``{weights}`` (random weights of the tiny preset without recorded classes), ``{bad_images}`` (the sample with
every image truncated after its header), ``{one_bad}`` (the sample with one), ``{mixed}`` (a folder of two
photos and a truncated one), ``{nan_weights}`` (``{weights}`` with a NaN), ``{a_file}``, ``{unwritable}`` are
filled in per test.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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
        None,
    ),
    ("train", "--dataset {tmp}/none --preset tiny --weights none", ["train.csv"], None),
    ("evaluate", "--dataset {tmp}/none --preset tiny --weights {weights}", ["train.csv"], None),
    (
        "infer",
        "--weights {weights} --preset tiny {tmp}/none --out {tmp}/out",
        ["no such image file or folder"],
        None,
    ),
    ("infer", "--weights {weights} --preset tiny {tmp}/empty --out {tmp}/out", ["no images found"], None),
    # empty splits
    ("train", "--dataset {sample} --preset tiny --weights none --val-split 1.0", ["--val-split"], None),
    ("train", "--dataset {sample} --preset tiny --weights none --classes cape", ["no usable images"], None),
    # bad arguments, refused before the work
    ("train", "--dataset {sample} --preset tiny --weights none --epochs 5,2", ["--epochs 5,2"], None),
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --steps-per-epoch -3",
        ["--steps-per-epoch -3", "at least 1"],
        None,
    ),
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --steps-per-epoch 0",
        ["--steps-per-epoch 0", "at least 1"],
        None,
    ),
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --validation-steps 0",
        ["--validation-steps 0"],
        None,
    ),
    ("train", "--dataset {sample} --preset tiny --weights none --limit 0", ["--limit 0"], None),
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --classes shoe;unicorn",
        ["--classes 'shoe;unicorn'", "unicorn"],
        None,
    ),
    ("train", "--dataset {sample} --preset tiny --weights none --resume", ["--resume needs --weights"], None),
    (
        "evaluate",
        "--dataset {sample} --preset tiny --weights {weights} --max-instances 0",
        ["--max-instances 0"],
        None,
    ),
    (
        "infer",
        "--weights {weights} --preset tiny {sample}/train --out {tmp}/o --max-per-class unicorn=2",
        ["unicorn"],
        None,
    ),
    ("infer", "--weights coco {sample}/train --out {tmp}/out", ["needs a fashion checkpoint"], None),
    ("infer", "--weights {weights} {sample}/train --out {tmp}/o --limit 0", ["--limit 0"], None),
    # output paths, checked before the work
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --logs {a_file}",
        ["--logs", "is a file"],
        None,
    ),
    (
        "train",
        "--dataset {sample} --preset tiny --weights none --logs {unwritable}/logs",
        ["--logs", "cannot write"],
        None,
    ),
    (
        "evaluate",
        "--dataset {sample} --weights {weights} --out {a_file}/eval.json",
        ["--out", "is a file, so nothing can be created under it"],
        None,
    ),
    ("evaluate", "--dataset {sample} --weights {weights} --out {tmp}", ["--out", "is a folder"], None),
    ("evaluate", "--dataset {sample} --weights {weights} --report {a_file}", ["--report", "is a file"], None),
    ("infer", "--weights {weights} {sample}/train --out {a_file}", ["--out", "is a file"], None),
    ("infer", "--weights last --logs {a_file} {sample}/train --out {tmp}/o", ["--logs", "is a file"], None),
    # weights
    ("train", "--dataset {sample} --preset tiny --weights {tmp}", ["is a folder"], None),
    ("evaluate", "--dataset {sample} --weights {tmp}", ["is a folder"], None),
    ("evaluate", "--dataset {sample} --weights {tmp}/nope.h5", ["no such file"], None),
    ("evaluate", "--dataset {sample} --weights last --logs {tmp}", ["no training run"], None),
    (
        "evaluate",
        "--dataset {sample} --weights {nan_weights}",
        ["non-finite", "nan_weights.h5", "conv"],
        None,
    ),
    (
        "train",
        "--dataset {sample} --preset tiny --weights {nan_weights}",
        ["non-finite", "nan_weights.h5"],
        None,
    ),
    # mismatched weights
    (
        "evaluate",
        "--dataset {sample} --preset tiny --classes all --weights {weights}",
        ["does not fit", "--classes"],
        None,
    ),
    (
        "infer",
        "--weights {weights} --preset tiny --classes thesis5 {sample}/train --out {tmp}/out",
        ["does not fit"],
        None,
    ),
    (
        "evaluate",
        "--dataset {sample} --preset tiny --weights {not_h5}",
        ["not HDF5 or corrupt", "not_h5.h5"],
        None,
    ),
    # bad files the user wants skipped: one warning each, counted under their cause
    (
        "infer",
        "--weights {weights} {mixed} --out {tmp}/mixed_out --no-overlays",
        ["1 unreadable image(s)"],
        1,
    ),
    ("evaluate", "--dataset {one_bad} --weights {weights} --limit 6", ["1 x unreadable_image"], 1),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_random_weights):
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "empty").mkdir()
    bad = tmp / "bad"
    shutil.copytree(SAMPLE, bad)
    for image in (bad / "train").iterdir():
        _truncate(image)
    one_bad = tmp / "one_bad"
    shutil.copytree(SAMPLE, one_bad)
    with open(one_bad / "train.csv") as f:
        first = one_bad / "train" / f.readlines()[1].split(",")[0]  # the first image evaluated
    _truncate(first)
    mixed = tmp / "mixed"
    mixed.mkdir()
    for image in sorted((Path(SAMPLE) / "train").iterdir())[:2]:
        shutil.copy(image, mixed)
    shutil.copy(first, mixed / "zz_truncated.jpg")
    (tmp / "not_h5.h5").write_text("not an HDF5 file")
    (tmp / "a_file").write_text("a file, not a folder")
    weights = tiny_random_weights(0)
    nan_weights = str(tmp / "nan_weights.h5")
    shutil.copy(weights, nan_weights)
    _poison(nan_weights)
    if os.geteuid() == 0:  # root writes through file modes: use a place where nobody can create files
        unwritable = "/proc/mrcnn-tests"
    else:
        unwritable = str(tmp / "read_only")
        os.mkdir(unwritable, 0o555)
    return {
        "sample": SAMPLE,
        "tmp": str(tmp),
        "weights": weights,
        "bad_images": str(bad),
        "one_bad": str(one_bad),
        "one_bad_file": first.name,
        "mixed": str(mixed),
        "not_h5": str(tmp / "not_h5.h5"),
        "nan_weights": nan_weights,
        "a_file": str(tmp / "a_file"),
        "unwritable": unwritable,
    }


def _truncate(image: Path) -> None:
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])  # the header reads, the pixels do not


def _poison(path: str) -> None:
    """Put a NaN into the first convolution kernel of a weights file, as a diverged run would have."""
    import h5py

    with h5py.File(path, "r+") as f:
        for layer in f.attrs["layer_names"]:
            group = f[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            kernels = [n for n in names if n.endswith("kernel:0")]
            if kernels:
                data = group[kernels[0]]
                value = data[()]
                value.flat[0] = np.nan
                data[...] = value
                return


def _argv(arguments: str, places: dict, command: str, tmp_path: Path) -> list[str]:
    argv = arguments.format(**places).split()
    if "--logs" not in arguments and command == "train":
        argv += ["--logs", str(tmp_path / "logs")]
    return argv


@pytest.mark.parametrize(
    "command, arguments, words, skips",
    ERRORS,
    ids=[f"{c}:{a[:40]}" + (f":skips {k}" if k else "") for c, a, _, k in ERRORS],
)
def test_user_error_exits_2_with_one_message_or_bad_files_are_skipped_and_counted(
    places, capsys, caplog, command, arguments, words, skips, tmp_path
):
    status = COMMANDS[command](_argv(arguments, places, command, tmp_path))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if skips is None:
        assert status == 2, out + err
        message = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(message) == 1, err
        assert all(w in err for w in words), err
        if words[0].startswith(
            "--"
        ):  # an argument's error: found before TensorFlow starts or a model is built
            assert "Running on" not in out, out
        return
    assert status == 0, out + err
    assert all(w in out + err for w in words), out + err
    bad_names = ("zz_truncated.jpg", places["one_bad_file"])
    logged = "\n".join(r.getMessage() for r in caplog.records)  # the console's warnings, as pytest holds them
    warnings = [
        line
        for line in (out + err + "\n" + logged).splitlines()
        if any(name in line for name in bad_names) and " x unreadable_image" not in line
    ]
    assert len(warnings) == skips, warnings  # one warning per bad file


def test_the_catalogue_covers_at_least_25_bad_inputs():
    assert len(ERRORS) >= 25


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
