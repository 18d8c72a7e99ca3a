"""Smoke tests of the demo, ``python -m jaxent``: argument errors and a tiny run."""

import subprocess
import sys

import pytest

from jaxent import __main__ as demo
from tests.utils import subprocess_env


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
    env = subprocess_env()
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


# Issue 11: "--learning-rate inf" trained to NaN, printed a table of nan, overwrote the
# plots and exited 0; "--seed -1" ended in a scikit-learn traceback. Every option is
# now checked before any work (exit 2, argparse's way), and a diverged run stops with
# exit 1 without saving plots. These call main(), which `python -m jaxent` runs as
# sys.exit(main()) (the subprocess test above covers that path), in this process.
@pytest.mark.parametrize(
    "argv,message",
    [
        (["--learning-rate", "inf"], "argument --learning-rate: must be > 0 and finite, got inf"),
        (["--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295], got -1"),
        (["--test-size", "0.001"], "--test-size 0.001 cannot split breast_cancer"),
        (["--learning-rate", "nan"], "--learning-rate: must be > 0 and finite"),
        (["--learning-rate=-inf"], "--learning-rate: must be > 0 and finite"),
        (["--C", "inf"], "--C: must be > 0 and finite"),
        (["--seed", str(2**32)], "--seed: must be an integer in [0, 4294967295]"),
        (["--datasets", "digits", "--test-size", "0.995"], "cannot split digits"),
    ],
)
def test_bad_options_exit_2_before_any_work(argv, message, capsys, tmp_path):
    out = tmp_path / "plots"
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--no-progress", *argv, "--out", str(out)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""  # nothing trained, nothing reported
    assert not out.exists()  # the output folder is made only once every option is valid


def test_diverged_run_exits_1_and_keeps_earlier_plots(capsys, tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    names = ("loss_curve.png", "predictive_entropy.png")
    earlier = {name: f"plot of an earlier run: {name}".encode() for name in names}
    for name, content in earlier.items():
        (out / name).write_bytes(content)
    # Adam's first step moves every weight by about the learning rate: 1e30 overflows.
    code = demo.main([
        "--no-progress", "--learning-rate", "1e30", "--steps", "4", "--chunk", "2",
        "--datasets", "breast_cancer", "--out", str(out),
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "error: training diverged on breast_cancer" in captured.err
    assert "try a smaller --learning-rate" in captured.err
    assert "nan" not in captured.out  # no table of nan
    for name, content in earlier.items():
        assert (out / name).read_bytes() == content
