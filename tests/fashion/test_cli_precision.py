"""--precision on the fashion command lines (evaluate, infer): parsing, the config it gives, a bfloat16 run."""

import contextlib
import io
import os
import shutil

import pytest

from fashion import evaluate, infer
from fashion.cli_common import inference_overrides, precision_choice, start_runtime
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from mrcnn.precision import resolve_precision
from mrcnn.runtime import has_bf16_hardware


def _infer_args(*extra):
    return infer.build_parser().parse_args(["img.jpg", "--out", "o", "--weights", "w.h5", *extra])


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_precision_becomes_mixed_precision(precision):
    assert inference_overrides(_infer_args("--precision", precision))["MIXED_PRECISION"] == precision
    args = evaluate.build_parser().parse_args(
        ["--dataset", "d", "--weights", "w.h5", "--precision", precision]
    )
    assert inference_overrides(args)["MIXED_PRECISION"] == precision


def test_infer_defaults_to_auto_resolved_for_this_machine():
    args = _infer_args()
    assert args.precision == "auto"
    name, reason = precision_choice(args)
    assert (name, reason) == resolve_precision("auto")
    assert inference_overrides(args)["MIXED_PRECISION"] == name


def test_evaluate_defaults_to_float32():
    args = evaluate.build_parser().parse_args(["--dataset", "d", "--weights", "w.h5"])
    assert args.precision == "float32"
    assert inference_overrides(args)["MIXED_PRECISION"] == "float32"


def test_unknown_precision_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        infer.build_parser().parse_args(["img.jpg", "--out", "o", "--weights", "w.h5", "--precision", "half"])
    assert exit_info.value.code == 2
    assert "--precision" in capsys.readouterr().err


def test_infer_runs_in_bfloat16(tiny_random_weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    name = sorted(n for n in os.listdir(os.path.join(SAMPLE, "train")) if n.endswith(".jpg"))[0]
    shutil.copy(os.path.join(SAMPLE, "train", name), images / name)
    built = []
    original = infer.build_inference_model

    def recording_build(*args, **kwargs):
        model = original(*args, **kwargs)
        built.append(model)
        return model

    argv = [
        str(images),
        "--out",
        str(tmp_path / "out"),
        "--weights",
        tiny_random_weights(5),
        "--preset",
        "tiny",
    ]
    argv += ["--min-confidence", "0", "--precision", "bfloat16", "--no-overlays"]
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(infer, "build_inference_model", recording_build)
        assert infer.main(argv) == 0
    (model,) = built
    assert model.config.MIXED_PRECISION == "bfloat16"
    assert model.keras_model.get_layer("fpn_p2").compute_dtype == "bfloat16"
    assert os.listdir(tmp_path / "out" / "label_maps") == [os.path.splitext(name)[0] + ".png"]


@pytest.mark.parametrize("choice", ["auto", "bfloat16", "float32"])
def test_start_up_line_names_the_precision_and_why(choice, capsys):
    name, why = resolve_precision(choice)
    line = start_runtime(False, choice)
    printed = capsys.readouterr().out.strip()
    assert printed == line[0].upper() + line[1:]
    assert line.endswith(f", {name}" if why == "chosen" else f", {name} ({why})"), line
    if choice == "bfloat16" and not has_bf16_hardware() and "GPU" not in line:
        assert "emulated: no AMX / AVX512-BF16 here" in line
