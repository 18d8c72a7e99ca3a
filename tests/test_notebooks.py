"""Executes every tutorial notebook in notebooks/; CI fails when one breaks.

Each notebook runs in a fresh Jupyter kernel (nbclient) with the notebook's folder as
working directory. A cell that raises — the notebooks check their own numbers with
``assert`` — fails the test and the error names the cell. Notebooks are stored without
outputs, which the second test enforces.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="needs nbclient: pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="needs ipykernel: pip install -e '.[dev]'")
pytest.importorskip("matplotlib", reason="the notebooks plot: pip install -e '.[demo]'")
pytest.importorskip("sklearn", reason="the notebooks load datasets: pip install -e '.[demo]'")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Each notebook is written to run in well under a minute on 2 CPU cores; a single cell
# taking 5 minutes means something hangs.
CELL_TIMEOUT_S = 300


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 4, f"expected the 4 tutorials in {NOTEBOOK_DIR}, found {NOTEBOOKS}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have stored outputs; clear them with "
        f"`jupyter nbconvert --clear-output --inplace {path.relative_to(NOTEBOOK_DIR.parent)}`"
    )
