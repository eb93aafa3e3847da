"""Every notebook in notebooks/ runs top to bottom, so none of them can rot; their outputs stay cleared in git.

The notebooks run with nbclient in one temporary working directory, in the order of ``ORDER``:
train_fashion.ipynb writes ``logs/notebook<timestamp>/`` there, and inspect_model.ipynb and demo.ipynb load
its newest checkpoint instead of training their own tiny model (what they do when run alone). The four
take about three minutes on 2 CPU cores, most of it train_fashion's three training stages.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ORDER = ("inspect_data.ipynb", "train_fashion.ipynb", "inspect_model.ipynb", "demo.ipynb")
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory all notebooks of this module share (their ``logs/`` lives there)."""
    return tmp_path_factory.mktemp("notebooks")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_every_notebook_is_run_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(ORDER)


@pytest.mark.parametrize("name", ORDER)
def test_outputs_are_cleared(name: str):
    nb = _read(name)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, (
        f"{name}: code cells {dirty} have outputs; run `jupyter nbconvert --clear-output --inplace`"
    )


@pytest.mark.parametrize("name", ORDER)
def test_notebook_runs(name: str, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    # The kernel is a fresh process: make the checkout importable even without `pip install -e .`.
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = _read(name)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any exception

    assert _images(nb) >= 3, f"{name} drew fewer figures than expected"
    if name == "train_fashion.ipynb":
        assert list(workdir.glob("logs/notebook*/history.csv")), "no history.csv written"
        assert list(workdir.glob("logs/notebook*/mask_rcnn_notebook_0005.h5")), "no last-epoch checkpoint"
    if name == "demo.ipynb":
        assert (workdir / "logs" / "demo_overlay.png").stat().st_size > 0
