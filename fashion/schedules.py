"""Named multi-stage training schedules and a runner that calls ``model.train(...)`` once per stage.

A stage trains ``layers`` ("heads", "4+", "all", ... as Matterport) up to the epoch number ``epochs``; epoch
numbers run on across stages, as in Matterport's ``train(epochs=...)``. A stage with ``final_learning_rate``
decays its rate geometrically, epoch by epoch, from ``learning_rate`` (first epoch of the stage) to
``final_learning_rate`` (last epoch), through a ``keras.callbacks.LearningRateScheduler`` passed in
``custom_callbacks`` (``MaskRCNN.train`` itself takes one constant rate). The decay is a function of the
absolute epoch, so a resumed stage picks it up where it stopped.

================ =====================================================================================
schedule         stages (end epoch, layers, learning rate, augmentation)
================ =====================================================================================
thesis001        10 heads @ 0.0005 constant, no augmentation; 30 all @ 0.0001 -> 0.00001, augmented.
                 Thesis 001 (4.3.2) trains the heads "for some epochs" and Full4 ran 30 epochs in all;
                 the 10/20 split is this project's choice.
thesis000        200 heads @ 0.001; 400 4+ @ 0.001; 500 all @ 0.00025 (thesis 000, 4.2.2), augmented.
deck002          10 heads @ 0.001; 20 all @ 0.0001; 30 all @ 0.00005, the last two augmented (the runs of
                 slide deck 002 chained into one schedule).
sample           12 all @ 0.01 -> 0.002, augmented (the shipped sample from scratch on a CPU).
tiny             1 heads @ 0.001; 2 all @ 0.001 -> 0.0005, augmented (tests).
================ =====================================================================================

Resuming: after ``model.load_weights(model.find_last(), by_name=True)`` the model's ``epoch`` is the last
finished epoch; :func:`run_schedule` skips stages that end at or before it and continues the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Stage:
    """One call to ``model.train``: train ``layers`` until epoch ``epochs`` (cumulative)."""

    name: str
    layers: str
    epochs: int
    learning_rate: float
    final_learning_rate: float | None = None
    augment: bool = False

    def rate_at(self, epoch: int, start_epoch: int) -> float:
        """Learning rate of (0-based, absolute) ``epoch`` in a stage that starts after ``start_epoch``."""
        if self.final_learning_rate is None:
            return self.learning_rate
        n = self.epochs - start_epoch
        if n <= 1:
            return self.learning_rate
        t = min(max(epoch - start_epoch, 0), n - 1) / (n - 1)
        return float(self.learning_rate * (self.final_learning_rate / self.learning_rate) ** t)


SCHEDULES: dict[str, tuple[Stage, ...]] = {
    "thesis001": (
        Stage("heads", "heads", 10, 0.0005),
        Stage("all", "all", 30, 0.0001, 0.00001, augment=True),
    ),
    "thesis000": (
        Stage("heads", "heads", 200, 0.001, augment=True),
        Stage("4+", "4+", 400, 0.001, augment=True),
        Stage("all", "all", 500, 0.00025, augment=True),
    ),
    "deck002": (
        Stage("heads", "heads", 10, 0.001),
        Stage("all", "all", 20, 0.0001, augment=True),
        Stage("all-low", "all", 30, 0.00005, augment=True),
    ),
    # From scratch (no pretrained backbone), so every layer trains from the start.
    "sample": (Stage("all", "all", 12, 0.01, 0.002, augment=True),),
}
# The tests' "tiny" schedule is added by fashion.testing.


def get_schedule(name: str) -> tuple[Stage, ...]:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; one of {sorted(SCHEDULES)}") from None


def with_epochs(schedule: Sequence[Stage], epochs: int | Sequence[int]) -> tuple[Stage, ...]:
    """The schedule with new stage end epochs.

    epochs: one number = the new total; stage ends are scaled in proportion (each stage keeps >= 1 epoch).
        A sequence = the end epoch of each stage, strictly increasing.
    """
    schedule = tuple(schedule)
    if isinstance(epochs, int):
        total = epochs
        if total < len(schedule):
            raise ValueError(f"{total} epochs cannot hold {len(schedule)} stages (one epoch each at least)")
        old_total = schedule[-1].epochs
        ends, prev = [], 0
        for k, stage in enumerate(schedule):
            left = len(schedule) - k - 1
            end = round(stage.epochs * total / old_total)
            end = min(max(end, prev + 1), total - left)
            ends.append(end)
            prev = end
    else:
        ends = [int(e) for e in epochs]
        if len(ends) != len(schedule):
            raise ValueError(f"{len(ends)} end epochs given for {len(schedule)} stages")
        if any(b <= a for a, b in zip([0, *ends], ends)):
            raise ValueError(f"stage end epochs must increase from 1: {ends}")
    return tuple(replace(stage, epochs=end) for stage, end in zip(schedule, ends))


def describe(schedule: Sequence[Stage], start_epoch: int = 0, augmentation: str | None = None) -> str:
    """A table of the stages, marking those already done (end <= start_epoch) and the current one."""
    lines = []
    prev = 0
    for k, stage in enumerate(schedule, 1):
        rate = f"{stage.learning_rate:g}"
        if stage.final_learning_rate is not None:
            rate += f" -> {stage.final_learning_rate:g} (per-epoch geometric decay)"
        aug = (augmentation or "yes") if stage.augment else "none"
        if aug is None or aug == "none":
            aug = "none"
        state = "done" if stage.epochs <= start_epoch else ("resume" if prev < start_epoch else "")
        lines.append(
            f"  stage {k} {stage.name:<8} layers={stage.layers:<6} epochs {prev + 1:>3}-{stage.epochs:<4} "
            f"lr {rate:<40} augmentation {aug:<10} {state}".rstrip()
        )
        prev = stage.epochs
    return "\n".join(lines)


def decay_callback(stage: Stage, start_epoch: int) -> Any:
    """A keras LearningRateScheduler giving ``stage.rate_at(epoch, start_epoch)`` at each epoch start."""
    import keras

    return keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: stage.rate_at(epoch, start_epoch), verbose=0
    )


def run_schedule(
    model: Any,
    schedule: Sequence[Stage],
    train_dataset: Any,
    val_dataset: Any,
    augmentation: Any = None,
    custom_callbacks: Sequence[Any] = (),
    log: Callable[[str], None] = print,
    make_decay_callback: Callable[[Stage, int], Any] = decay_callback,
    **train_kwargs: Any,
) -> list[Stage]:
    """Trains ``model`` stage by stage, starting from ``model.epoch``.

    Stages ending at or before ``model.epoch`` are skipped; a stage the model stopped inside of is continued
    (``model.train`` starts from ``model.epoch``). ``augmentation`` is used in stages with ``augment``.
    Extra keyword arguments go to every ``model.train`` call. Returns the stages that were trained.
    """
    trained = []
    prev = 0
    for k, stage in enumerate(schedule, 1):
        start = prev
        prev = stage.epochs
        done = int(getattr(model, "epoch", 0))
        if stage.epochs <= done:
            log(f"Stage {k}/{len(schedule)} {stage.name!r}: already done (model at epoch {done}), skipped")
            continue
        callbacks = list(custom_callbacks)
        if stage.final_learning_rate is not None:
            callbacks.append(make_decay_callback(stage, start))
        first = max(start, done)
        log(
            f"Stage {k}/{len(schedule)} {stage.name!r}: layers {stage.layers}, "
            f"epochs {first + 1}-{stage.epochs}, "
            f"lr {stage.rate_at(first, start):g}"
            + (f" -> {stage.final_learning_rate:g}" if stage.final_learning_rate else "")
            + (", augmented" if stage.augment and augmentation is not None else "")
        )
        model.train(
            train_dataset,
            val_dataset,
            learning_rate=stage.rate_at(first, start),
            epochs=stage.epochs,
            layers=stage.layers,
            augmentation=augmentation if stage.augment else None,
            custom_callbacks=callbacks,
            **train_kwargs,
        )
        trained.append(stage)
    return trained
