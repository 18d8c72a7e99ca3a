"""Executes every tutorial notebook in notebooks/; CI fails when one breaks.

Each notebook runs in a fresh Jupyter kernel (nbclient) with the notebook's folder as
working directory, on a copy in memory: the stored file is not written. A cell that
raises — the notebooks check their own numbers with ``assert`` — fails the test and the
error names the cell.

The notebooks are stored with their outputs, so that GitHub and the documentation site
(which renders them as stored) show them; ``notebooks/execute.py`` refreshes them. The
second test checks that each stored notebook was executed top to bottom, without error.
"""

from __future__ import annotations

import importlib.util
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
# notebooks/execute.py (the script that refreshes the stored outputs) runs them: the
# same kernel, working directory and cell timeout here.
_spec = importlib.util.spec_from_file_location("notebook_runner", NOTEBOOK_DIR / "execute.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 4, f"expected the 4 tutorials in {NOTEBOOK_DIR}, found {NOTEBOOKS}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    stored = path.read_bytes()
    start = time.perf_counter()
    try:
        runner.run(path)
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    assert path.read_bytes() == stored, f"executing {path.name} changed the stored file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_executed_in_order(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    counts = [cell.execution_count for _, cell in code]
    errors = [
        i for i, cell in code if any(output.output_type == "error" for output in cell.outputs)
    ]
    refresh = f"refresh the stored outputs with `.venv/bin/python notebooks/execute.py {path.name}`"
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: the code cells' execution counts are {counts}, not 1..{len(code)}: "
        f"the stored outputs are not those of one run top to bottom (a cell edited, run "
        f"out of order, or not run; an empty code cell is never executed: delete it); "
        f"{refresh}"
    )
    assert not errors, f"{path.name}: cells {errors} have stored errors; {refresh}"
