"""Test-wide settings: quiet TensorFlow, headless matplotlib, bounded hypothesis runs, the ``graph`` marker."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=50, deadline=None)
settings.load_profile("ci")


# Tests that build or run TensorFlow graphs (model, detection, training, the CLIs, export). CI runs them a second
# time with TF_ENABLE_ONEDNN_OPTS=1, the path CPUs with AVX-512 VNNI/BF16 or AMX take by default
# (`pytest -m "graph and not slow"`). Paths relative to tests/.
GRAPH_TESTS = (
    "mrcnn/modeling/",
    "mrcnn/test_model.py",
    "mrcnn/test_zero_rows.py",
    "mrcnn/test_training.py",
    "mrcnn/test_mixed_precision.py",
    "mrcnn/test_metadata.py",
    "mrcnn/test_distribute.py",
    "mrcnn/test_export.py",
    "fashion/test_train.py",
    "fashion/test_evaluate.py",
    "fashion/test_infer.py",
)
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            path = Path(str(item.fspath)).resolve().relative_to(_TESTS).as_posix()
        except ValueError:
            continue
        if path.startswith(GRAPH_TESTS):
            item.add_marker(pytest.mark.graph)
