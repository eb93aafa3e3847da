"""Test helpers of the fashion package: the ``tiny`` preset and schedule, registered when this module is imported.

``tiny`` is the ``sample`` preset with 2 steps per epoch, 1 validation step and 16 training ROIs per image:
a whole ``fashion/train.py`` run on the shipped sample takes about a minute on 2 CPU cores. It is not one of
the production presets (:data:`fashion.config.PRESETS` lists those); the test suite imports this module
(``tests/fashion/conftest.py``), after which ``make_config("tiny")`` and ``--preset tiny`` work as for any
registered preset.
"""

from __future__ import annotations

from fashion.config import SMALL_SETTINGS, Preset, register_preset
from fashion.schedules import SCHEDULES, Stage

__all__ = ["TINY", "TINY_SCHEDULE"]

# One epoch of heads, then one of everything.
TINY_SCHEDULE = SCHEDULES.setdefault(
    "tiny",
    (
        Stage("heads", "heads", 1, 0.001),
        Stage("all", "all", 2, 0.001, 0.0005, augment=True),
    ),
)

TINY = register_preset(
    Preset(
        "tiny",
        "Tests: the sample preset with 2 steps per epoch",
        config={**SMALL_SETTINGS, "STEPS_PER_EPOCH": 2, "VALIDATION_STEPS": 1, "TRAIN_ROIS_PER_IMAGE": 16},
        inference={"DETECTION_MAX_INSTANCES": 10},
        schedule="tiny",
        attributes="all",
    )
)
