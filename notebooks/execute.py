"""Executes the tutorial notebooks in place, refreshing their stored outputs.

The notebooks in this folder are stored with their outputs (printed values, tables,
figures), so that GitHub and the documentation site, which renders them as stored, show
them. After changing a notebook, or jaxent in a way that changes what a notebook shows,
run from the repository root::

    .venv/bin/python notebooks/execute.py                      # every notebook
    .venv/bin/python notebooks/execute.py 03_logistic_regression.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient), with this
folder as working directory (tests/test_notebooks.py runs them with :func:`run`). A notebook is
written back only when every cell ran without error; a failing cell stops the script with
the error and leaves that notebook unchanged. Per-cell timing metadata is not recorded, so
a rerun changes only the outputs (some outputs are timings and change on every run).
tests/test_notebooks.py checks that each stored notebook was executed top to bottom.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent
# Each notebook runs in well under a minute on 2 CPU cores; a 5-minute cell means a hang.
CELL_TIMEOUT_S = 300


def run(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` run top to bottom in a fresh kernel (not written back);
    raises ``nbclient.exceptions.CellExecutionError`` naming a failing cell."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        record_timing=False,
    )
    client.execute()
    return nb


def execute(path: Path) -> None:
    """Runs the notebook at ``path`` top to bottom and stores it with the new outputs."""
    nb = run(path)
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        help="notebook file names in notebooks/ (default: all of them)",
    )
    args = parser.parse_args(argv)
    paths = (
        [NOTEBOOK_DIR / Path(name).name for name in args.notebooks]
        if args.notebooks
        else sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    )
    for path in paths:
        start = time.perf_counter()
        try:
            execute(path)
        except nbclient.exceptions.CellExecutionError as err:
            print(f"{path.name} failed (left unchanged):\n{err}", file=sys.stderr)
            return 1
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
