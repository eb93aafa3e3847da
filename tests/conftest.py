"""Test-wide settings: quiet TensorFlow, headless matplotlib, bounded hypothesis runs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=50, deadline=None)
settings.load_profile("ci")
