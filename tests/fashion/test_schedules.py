import pytest

from fashion.schedules import (
    SCHEDULES,
    Stage,
    decay_callback,
    describe,
    get_schedule,
    run_schedule,
    with_epochs,
)


class FakeModel:
    """Records train() calls and advances its epoch as MaskRCNN does."""

    def __init__(self, epoch=0):
        self.epoch = epoch
        self.calls = []

    def train(
        self,
        train_dataset,
        val_dataset,
        learning_rate,
        epochs,
        layers,
        augmentation=None,
        custom_callbacks=None,
        **kwargs,
    ):
        self.calls.append(
            {
                "lr": learning_rate,
                "epochs": epochs,
                "layers": layers,
                "aug": augmentation,
                "callbacks": list(custom_callbacks or []),
                "kwargs": kwargs,
                "data": (train_dataset, val_dataset),
            }
        )
        self.epoch = max(self.epoch, epochs)


def fake_decay(stage, start):
    return ("decay", stage.name, start)


def run(schedule, model, **kw):
    return run_schedule(
        model,
        get_schedule(schedule),
        "train",
        "val",
        augmentation="AUG",
        log=lambda s: None,
        make_decay_callback=fake_decay,
        **kw,
    )


def test_thesis001_heads_constant_then_all_decaying_with_augmentation():
    model = FakeModel()
    run("thesis001", model, workers=2)
    assert [(c["layers"], c["lr"], c["epochs"], c["aug"]) for c in model.calls] == [
        ("heads", 0.0005, 10, None),
        ("all", 0.0001, 30, "AUG"),
    ]
    assert model.calls[0]["callbacks"] == []
    assert model.calls[1]["callbacks"] == [("decay", "all", 10)]
    assert model.calls[0]["kwargs"] == {"workers": 2} and model.calls[0]["data"] == ("train", "val")


def test_thesis000_heads_4plus_all():
    model = FakeModel()
    run("thesis000", model)
    assert [(c["layers"], c["lr"], c["epochs"]) for c in model.calls] == [
        ("heads", 0.001, 200),
        ("4+", 0.001, 400),
        ("all", 0.00025, 500),
    ]


def test_resume_skips_finished_stages_and_continues_the_current_one():
    model = FakeModel(epoch=250)
    trained = run("thesis000", model)
    assert [(c["layers"], c["epochs"]) for c in model.calls] == [("4+", 400), ("all", 500)]
    assert [s.name for s in trained] == ["4+", "all"]
    decayed = FakeModel(epoch=20)
    run("thesis001", decayed)
    (call,) = decayed.calls
    assert call["layers"] == "all" and call["epochs"] == 30
    assert call["lr"] == pytest.approx(0.0001 * 0.1 ** (10 / 19))  # the rate of epoch 21 of the decay
    finished = FakeModel(epoch=30)
    assert run("thesis001", finished) == [] and finished.calls == []


def test_geometric_decay_over_the_stage():
    stage = Stage("all", "all", 30, 0.0001, 0.00001)
    rates = [stage.rate_at(e, 10) for e in range(10, 30)]
    assert rates[0] == pytest.approx(0.0001) and rates[-1] == pytest.approx(0.00001)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    callback = decay_callback(stage, 10)  # a real keras LearningRateScheduler
    assert callback.schedule(10, 0.5) == pytest.approx(0.0001)
    assert callback.schedule(29, 0.5) == pytest.approx(0.00001)
    assert Stage("h", "heads", 5, 0.001).rate_at(3, 0) == 0.001


def test_with_epochs_scales_or_sets_stage_ends():
    assert [s.epochs for s in with_epochs(SCHEDULES["thesis001"], 3)] == [1, 3]
    assert [s.epochs for s in with_epochs(SCHEDULES["thesis000"], 5)] == [2, 4, 5]
    assert [s.epochs for s in with_epochs(SCHEDULES["thesis000"], 3)] == [1, 2, 3]
    assert [s.epochs for s in with_epochs(SCHEDULES["thesis001"], [2, 7])] == [2, 7]
    with pytest.raises(ValueError):
        with_epochs(SCHEDULES["thesis000"], 2)
    with pytest.raises(ValueError):
        with_epochs(SCHEDULES["thesis001"], [3, 3])


def test_describe_marks_progress():
    text = describe(SCHEDULES["thesis001"], start_epoch=12, augmentation="thesis001")
    lines = text.splitlines()
    assert "heads" in lines[0] and lines[0].endswith("done")
    assert "0.0001 -> 1e-05" in lines[1] and lines[1].endswith("resume") and "thesis001" in lines[1]
