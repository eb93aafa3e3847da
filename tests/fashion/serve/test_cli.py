"""fashion-serve's command line: user errors exit 2 with one line (no TensorFlow needed), the precision
stand-in, and the settings the options make."""

import socket

import pytest

from fashion.serve import cli
from fashion.serve.cli import (
    build_parser,
    main,
    mixed_precision_policy,
    model_overrides,
    precision_name,
    settings_from,
)


def run(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_a_missing_checkpoint_is_a_usage_error(capsys, tmp_path):
    rc, err = run(["--weights", str(tmp_path / "nope.h5"), "--port", "0"], capsys)
    assert rc == 2 and "nope.h5" in err and "no such file" in err and "Traceback" not in err


def test_a_busy_port_is_a_usage_error_before_the_model_loads(capsys, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        rc, err = run(["--weights", str(tmp_path / "never_read.h5"), "--port", str(port)], capsys)
    assert rc == 2 and f"127.0.0.1:{port}" in err and "cannot listen" in err


@pytest.mark.parametrize(
    "option, value",
    [
        ("--max-batch", "0"),
        ("--max-queue", "0"),
        ("--timeout", "0"),
        ("--max-upload-mb", "-1"),
        ("--port", "70000"),
    ],
)
def test_out_of_range_settings_are_usage_errors(capsys, tmp_path, option, value):
    rc, err = run(["--weights", str(tmp_path / "w.h5"), option, value], capsys)
    assert rc == 2 and option in err and "out of range" in err


def test_settings_from_options():
    args = build_parser().parse_args(
        [
            "--weights",
            "x.h5",
            "--max-batch",
            "8",
            "--max-upload-mb",
            "1.5",
            "--max-pixels",
            "1000",
            "--timeout",
            "9",
        ]
    )
    settings = settings_from(args)
    assert settings.max_batch == 8 and settings.max_upload_bytes == int(1.5 * 2**20)
    assert settings.max_pixels == 1000 and settings.request_timeout_s == 9.0
    assert args.host == "127.0.0.1" and args.port == 8000  # loopback unless told otherwise


def test_max_batch_is_an_integer_or_auto():
    parse = build_parser().parse_args
    assert parse(["--weights", "x.h5"]).max_batch == "auto"
    assert parse(["--weights", "x.h5", "--max-batch", "3"]).max_batch == 3
    with pytest.raises(SystemExit):
        parse(["--weights", "x.h5", "--max-batch", "many"])
    with pytest.raises(ValueError, match="auto"):
        settings_from(parse(["--weights", "x.h5"]))
    assert settings_from(parse(["--weights", "x.h5"]), max_batch=8).max_batch == 8


def test_precision_choices_map_to_mixed_precision_policies():
    assert mixed_precision_policy("float32") is None
    assert mixed_precision_policy("auto") is None
    assert mixed_precision_policy("bfloat16") == "mixed_bfloat16"
    assert mixed_precision_policy("float16") == "mixed_float16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--weights", "x.h5", "--precision", "int8"])


def test_model_overrides_are_infers_plus_the_precision():
    args = build_parser().parse_args(
        ["--weights", "x.h5", "--min-confidence", "0.2", "--max-instances", "7", "--precision", "float16"]
    )
    overrides = model_overrides(args)
    assert overrides["DETECTION_MIN_CONFIDENCE"] == 0.2 and overrides["DETECTION_MAX_INSTANCES"] == 7
    assert precision_name(overrides["MIXED_PRECISION"]) == "float16"
    assert [precision_name(p) for p in (None, "mixed_bfloat16", "bfloat16", "float32")] == [
        "float32",
        "bfloat16",
        "bfloat16",
        "float32",
    ]


def test_a_shared_precision_option_replaces_serves_own(monkeypatch):
    """When fashion.cli_common's model options bring --precision (and inference_overrides reads it), the
    service takes both rather than adding a second --precision."""
    add_shared = cli.add_model_arguments
    shared_overrides = cli.inference_overrides

    def add_model_arguments(parser):
        add_shared(parser)
        parser.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="auto")

    def inference_overrides(args):
        return {
            **shared_overrides(args),
            "MIXED_PRECISION": {"auto": "float32"}.get(args.precision, args.precision),
        }

    monkeypatch.setattr(cli, "add_model_arguments", add_model_arguments)
    monkeypatch.setattr(cli, "inference_overrides", inference_overrides)
    parse = build_parser().parse_args
    assert parse(["--weights", "x.h5"]).precision == "auto"
    assert precision_name(model_overrides(parse(["--weights", "x.h5"]))["MIXED_PRECISION"]) == "float32"
    args = parse(["--weights", "x.h5", "--precision", "bfloat16"])
    assert precision_name(model_overrides(args)["MIXED_PRECISION"]) == "bfloat16"
