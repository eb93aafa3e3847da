"""fashion/train.py: argument handling and failures (fast), and a real run plus resume (slow)."""

import json
import os
import shutil

import pytest

from fashion import evaluate as evaluate_cli
from fashion import train as train_cli
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from mrcnn.metadata import read_metadata


def test_coco_download_failure_says_so_and_suggests_alternatives(tmp_path, monkeypatch, capsys):
    from mrcnn import download

    def offline(path, *args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(download, "download_trained_weights", offline)
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    argv = ["--dataset", SAMPLE, "--preset", "tiny", "--weights", "coco", "--weights-dir", str(tmp_path)]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "could not download Matterport's COCO-trained Mask R-CNN" in err and "network is unreachable" in err
    )
    assert "--weights none" in err and "--weights PATH" in err
    assert not os.listdir(tmp_path)


def test_usage_errors_name_the_problem(tmp_path, capsys):
    base = ["--preset", "tiny", "--logs", str(tmp_path / "logs")]
    assert train_cli.main(["--dataset", str(tmp_path), "--weights", "none", *base]) == 2
    assert "train.csv" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", str(tmp_path / "x.h5"), *base]) == 2
    assert "no such file" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--epochs", "5,2", *base]) == 2
    assert "--epochs 5,2" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--classes", "cape", *base]) == 2
    assert "no usable images" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--attributes", "zigzag", *base]) == 2
    err = capsys.readouterr().err
    assert "--attributes 'zigzag'" in err and "Traceback" not in err


def test_resume_without_a_previous_run_is_an_error(tmp_path, capsys):
    argv = ["--dataset", SAMPLE, "--preset", "tiny", "--weights", "last", "--logs", str(tmp_path)]
    assert train_cli.main(argv) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_trains_on_the_sample_then_resumes_with_weights_last(tmp_path, capsys):
    """Real training, 2 + 1 epochs of 2 steps at 128x128 with the small backbone (1-2 minutes on 2 CPU cores)."""
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE, data)
    logs = tmp_path / "logs"
    common = [
        "--dataset",
        str(data),
        "--preset",
        "tiny",
        "--logs",
        str(logs),
        "--val-split",
        "0.2",
        "--eval-limit",
        "2",
        "--verbose",
        "2",
    ]

    assert train_cli.main([*common, "--weights", "none", "--epochs", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "Plan: preset tiny" in out and "stage 2 all" in out and "29 train" in out
    assert "mAP@50 =" in out and "Evaluating the trained weights (epoch 2)" in out
    # The tiny preset learns the sample's attributes by default: a sixth loss and named attributes.
    assert "attributes 5: plain (pattern), stripe, dot, short sleeve, long sleeve" in out
    (run,) = os.listdir(logs)
    files = set(os.listdir(logs / run))
    assert {"mask_rcnn_fashion_0001.h5", "mask_rcnn_fashion_0002.h5", "plan.json", "metrics.json"} <= files
    meta = read_metadata(str(logs / run / "mask_rcnn_fashion_0002.h5"))
    assert meta.config["NUM_ATTRIBUTES"] == 5 and meta.attribute_source_ids == [0, 1, 2, 3, 4]
    assert meta.attribute_names == ["plain (pattern)", "stripe", "dot", "short sleeve", "long sleeve"]
    with open(logs / run / "history.csv") as f:
        assert "mrcnn_attr_loss" in f.readline()
    # fashion/evaluate.py's metrics (one evaluation path): the same summary keys, on the 2 --eval-limit images.
    metrics = json.loads((logs / run / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["checkpoint"].endswith("mask_rcnn_fashion_0002.h5")
    assert set(evaluate_cli.summary(metrics)) == set(metrics["summary"])
    assert metrics["summary"]["mAP50"] is None or 0.0 <= metrics["summary"]["mAP50"] <= 1.0

    # Resume: same folder, stage 1 skipped, stage 2 continued from epoch 2 to 3.
    assert train_cli.main([*common, "--weights", "last", "--epochs", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 2" in out
    assert "Stage 1/2 'heads': already done" in out and "epochs 3-3" in out
    assert "different stages" in out  # the plan changed (3 epochs instead of 2) and is reported
    assert os.listdir(logs) == [run]
    assert "mask_rcnn_fashion_0003.h5" in os.listdir(logs / run)


def test_weights_path_starts_a_new_run_at_epoch_0_unless_resume(tmp_path):
    """--weights PATH: the file's weights, a new run folder, epoch 0 of the schedule (the issue: it took the
    file's epoch number and the end of the schedule's learning rate); --resume continues PATH's run."""
    from fashion.config import make_config
    from mrcnn.model import MaskRCNN

    logs = tmp_path / "logs"
    model = MaskRCNN("training", make_config("tiny"), str(logs))
    run = logs / "fashion20240101T0000"
    run.mkdir(parents=True)
    model.epoch = 3
    in_run = str(run / "mask_rcnn_fashion_0003.h5")
    model.save_weights(in_run)  # records epoch 3
    elsewhere = str(tmp_path / "copied.h5")
    shutil.copy(in_run, elsewhere)

    described = train_cli.load_initial_weights(model, in_run, in_run)
    assert model.epoch == 0 and model.log_dir != str(run) and "a new run from epoch 0" in described
    described = train_cli.load_initial_weights(model, in_run, in_run, resume=True)
    assert model.epoch == 3 and model.log_dir == str(run) and "resuming after epoch 3" in described
    train_cli.load_initial_weights(model, elsewhere, elsewhere, resume=True)  # the epoch the file records
    assert model.epoch == 3 and model.log_dir != str(run)
    train_cli.load_initial_weights(model, elsewhere, elsewhere)
    assert model.epoch == 0


def test_ctrl_c_exits_130_naming_the_last_checkpoint_with_a_resume_command_that_parses(
    tmp_path, monkeypatch, capsys
):
    """The message of Ctrl-C at each phase (the real interrupt is bench/faults.py's and the slow
    test_train_faults.py's): no traceback, exit 130, what was saved, and a command that resumes from it."""
    import shlex
    from types import SimpleNamespace

    checkpoint = str(tmp_path / "logs" / "fashion20260101T1200" / "mask_rcnn_fashion_0002.h5")
    model = SimpleNamespace(epoch=2, last_checkpoint=checkpoint, log_dir=os.path.dirname(checkpoint))
    argv = ["--dataset", SAMPLE, "--preset", "tiny", "--weights", "none", "--logs", str(tmp_path / "logs")]

    def interrupted_in(phase, model):
        def train(args, state):
            state["model"], state["phase"] = model, phase
            raise KeyboardInterrupt

        monkeypatch.setattr(train_cli, "_train", train)
        assert train_cli.main(argv) == 130
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    err = interrupted_in("training", model)
    assert f"in epoch 3; the last complete checkpoint is {checkpoint} (epoch 2). Resume with: " in err
    command = shlex.split(err.split("Resume with: ")[1].strip())
    assert command[:3] == ["python", "-m", "fashion.train"]
    resumed = train_cli.build_parser().parse_args(command[3:])
    assert resumed.weights == checkpoint and resumed.resume and resumed.dataset == SAMPLE
    assert resumed.preset == "tiny" and resumed.logs == str(tmp_path / "logs")

    err = interrupted_in("training", SimpleNamespace(epoch=0, last_checkpoint=None, log_dir="logs/run"))
    assert "before the run's first checkpoint" in err and "Start again with: python -m fashion.train" in err
    err = interrupted_in("evaluation", model)
    assert "during the final evaluation; training is complete" in err and checkpoint in err
    assert "interrupted: before training started; nothing was written" in interrupted_in("training", None)


def test_weights_imagenet_is_the_resnet_of_the_presets_depth(tmp_path, monkeypatch):
    from mrcnn import download

    def offline(path, *args, **kwargs):
        raise ConnectionError(f"offline: {os.path.basename(path)}")

    monkeypatch.setattr(download, "download_trained_weights", offline)
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    for backbone, file in (("se_resnet101", "resnet101_weights"), ("resnet50", "resnet50_weights")):
        with pytest.raises(train_cli.TrainError, match=file) as info:
            train_cli.resolve_weights("imagenet", str(tmp_path), backbone)
        assert "--weights none" in str(info.value)
