"""The package type-checks: ``mypy jaxent`` (configured in pyproject.toml) is clean."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_mypy_clean():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "jaxent"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mypy jaxent found errors:\n{result.stdout}{result.stderr}"
