"""Smoke tests of the demo, ``python -m jaxent``: argument errors and a tiny run."""

import os
import subprocess
import sys

import pytest

from jaxent import __main__ as demo


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--steps", "0"], "--steps: must be > 0"),
        (["--chunk", "-3"], "--chunk: must be > 0"),
        (["--C", "0"], "--C: must be > 0"),
        (["--test-size", "1.5"], "--test-size: must lie strictly between 0 and 1"),
        (["--datasets", "iris"], "invalid choice: 'iris'"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_out_folder_is_rejected(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args(["--out", str(blocker / "plots")])
    assert exit_info.value.code == 2
    assert "is not a writable folder" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_run_reports_and_saves_plots(tmp_path):
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "jaxent",
        "--steps",
        "6",
        "--chunk",
        "4",
        "--no-progress",
        "--datasets",
        "breast_cancer",
        "--out",
        str(out),
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(demo.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    for text in (
        "jaxent nats",
        "bits",
        "sklearn nats",
        "test cross-entropy",
        "test accuracy",
        "KL(mean predicted || empirical)",
        "entropy of predictions",
        str(out),
    ):
        assert text in result.stdout
    assert (out / "loss_curve.png").stat().st_size > 0
    assert (out / "predictive_entropy.png").stat().st_size > 0
