"""Training run folders and their checkpoints, found without TensorFlow.

A run writes ``<model_dir>/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<epoch>.h5`` (Matterport's names); a run
started while that folder exists (the same minute, or a killed run's) takes ``<name><YYYYMMDDTHHMM>-2``,
``-3``, ... (:meth:`mrcnn.model.MaskRCNN.claim_log_dir`). A checkpoint is written to ``<file>.tmp`` and renamed
into place once complete, so ``.tmp`` files are never checkpoints.
"""

from __future__ import annotations

import os
import re

__all__ = ["find_last_checkpoint", "run_checkpoints", "run_folders"]

# A checkpoint in a run folder: <model_dir>/<name><YYYYMMDDTHHMM>[-k]/mask_rcnn_<name>_<epoch>.h5 (Matterport's
# folder names have no "-k"; a second run started in the same minute gets "-2", and so on).
_CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+?(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(?:-\d+)?[/\\]mask\_rcnn\_[\w-]+?(\d{4,})\.h5$"
)
_CHECKPOINT_FILE_RE = re.compile(r"^mask_rcnn_[\w-]*?(\d{4,})\.h5$")


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:  # missing, or not a folder
        return []


def run_folders(model_dir: str, name: str | None) -> list[str]:
    """The run folders of config NAME ``name`` in ``model_dir``, oldest first: ``<name><YYYYMMDDTHHMM>``
    (Matterport's) and ``<name><YYYYMMDDTHHMM>-k`` (a later run of the same minute), by time then k."""
    name = (name or "mrcnn").lower()
    pattern = re.compile(re.escape(name) + r"(\d{8}T\d{4})(?:-(\d+))?")
    runs = []
    for entry in _listdir(model_dir):
        match = pattern.fullmatch(entry)
        if match and os.path.isdir(os.path.join(model_dir, entry)):
            runs.append((match.group(1), int(match.group(2) or 1), entry))
    return [os.path.join(model_dir, entry) for _, _, entry in sorted(runs)]


def run_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """[(epoch, path)] of the complete checkpoints of a run folder, by epoch.

    Complete: ``mask_rcnn_<name>_<epoch>.h5`` (never a ``.tmp`` being written) that opens as HDF5 and lists
    its layers. Checkpoints are renamed into place only once written and synced, so this leaves out only
    files damaged afterwards (a disk or a copy that failed).
    """
    import h5py

    found = []
    for entry in _listdir(run_dir):
        match = _CHECKPOINT_FILE_RE.match(entry)
        if not match:
            continue
        path = os.path.join(run_dir, entry)
        try:
            with h5py.File(path, "r") as f:
                complete = "layer_names" in f.attrs or "layer_names0" in f.attrs
        except OSError:
            complete = False
        if complete:
            found.append((int(match.group(1)), path))
    return sorted(found)


def find_last_checkpoint(model_dir: str, name: str | None) -> str:
    """Path of the last complete checkpoint (``mask_rcnn_*.h5``) of the newest training run of config NAME
    ``name`` in ``model_dir`` that has one (a newer run killed before its first checkpoint is passed over).
    Raises FileNotFoundError saying what is missing."""
    name = (name or "mrcnn").lower()
    runs = run_folders(model_dir, name)
    if not runs:
        raise FileNotFoundError(f"no training run of {name!r} in {model_dir!r}: nothing to resume from")
    for run_dir in reversed(runs):
        checkpoints = run_checkpoints(run_dir)
        if checkpoints:
            return checkpoints[-1][1]
    raise FileNotFoundError(
        f"no complete checkpoint (mask_rcnn_*.h5) in the {len(runs)} run folder(s) of {name!r} in "
        f"{model_dir!r} (newest: {runs[-1]!r})"
    )
