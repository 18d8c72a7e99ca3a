"""``python -m jaxent``: train logistic regression with optax and report in bits and nats.

Trains on two datasets shipped with scikit-learn (breast cancer: 2 classes; digits:
10 classes), standardized, with a train/test split; prints train/test cross-entropy,
the entropy of the predictions, the KL divergence between the mean predicted and the
empirical class distribution, and accuracy, next to the same figures for
scikit-learn's ``LogisticRegression`` (same ``C``, same data); saves a loss curve and
histograms of predictive entropy (correct vs wrong predictions) as PNG files.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

import jaxent as je
from jaxent import logistic

try:
    import matplotlib
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from tqdm import tqdm
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(
        f"the demo needs the 'demo' extras ({err.name} is missing): pip install 'jaxent[demo]'"
    )

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend

DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits}


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):  # nan and inf too
            raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


# The seeds train_test_split accepts (NumPy's legacy RandomState).
_MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value <= _MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {_MAX_SEED}], got {text}")
    return value


@functools.cache
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a dataset, loaded once (validation and training share it)."""
    return DATASETS[name](return_X_y=True)


def split_dataset(name: str, test_size: float, seed: int) -> list[np.ndarray]:
    """``x_train, x_test, y_train, y_test``, stratified; the same call validates options."""
    x, y = load(name)
    return train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)


class Diverged(RuntimeError):
    """Training produced a non-finite objective or parameters."""


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxent",
        description="Train logistic regression with optax on scikit-learn's breast cancer and "
        "digits data; report cross-entropy, entropy, KL and accuracy in bits and nats "
        "next to scikit-learn, and save plots.",
    )
    parser.add_argument(
        "--steps", type=_positive(int), default=1000, help="optimizer steps (default 1000)"
    )
    parser.add_argument(
        "--chunk", type=_positive(int), default=50, help="steps per jitted chunk (default 50)"
    )
    parser.add_argument(
        "--learning-rate", type=_positive(float), default=0.05, help="Adam's step size"
    )
    parser.add_argument(
        "--C", type=_positive(float), default=1.0, help="inverse l2 strength, as scikit-learn's"
    )
    parser.add_argument("--test-size", type=_fraction, default=0.25, help="held-out fraction")
    parser.add_argument(
        "--seed", type=_seed, default=0, help=f"seed of the train/test split, 0 to {_MAX_SEED}"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        default=sorted(DATASETS),
        help="which data",
    )
    parser.add_argument(
        "--out", default="jaxent-demo", help="folder for the PNG plots (default jaxent-demo/)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    # Every option is checked before any work: the split of each dataset is made once
    # here (scikit-learn's own rules: each class in both parts), the folder last.
    for name in args.datasets:
        try:
            split_dataset(name, args.test_size, args.seed)
        except ValueError as err:
            parser.error(f"--test-size {args.test_size} cannot split {name}: {err}")
    try:
        os.makedirs(args.out, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as err:
        parser.error(f"--out {args.out!r} is not a writable folder: {err.strerror or err}")
    return args


def train(x, y, num_classes, l2, args, desc):
    """Adam on ``logistic.loss``, in jitted chunks of ``lax.scan`` so the bar moves."""
    optimizer = optax.adam(args.learning_rate)
    params = logistic.init(x.shape[1], num_classes)
    state = optimizer.init(params)

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(logistic.loss)(params, x, y, l2=l2)
        updates, state = optimizer.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), value

    @functools.partial(jax.jit, static_argnames="length")
    def run(params, state, length):
        return jax.lax.scan(step, (params, state), length=length)

    curve = []
    with tqdm(
        total=args.steps, desc=desc, unit="step", disable=args.no_progress, leave=False
    ) as bar:
        done = 0
        while done < args.steps:
            length = min(args.chunk, args.steps - done)
            (params, state), values = run(params, state, length=length)
            curve.append(np.asarray(values))
            done += length
            if not np.all(np.isfinite(curve[-1])):
                # values[i] is the objective after i steps
                seen = np.concatenate(curve)
                i = int(np.argmin(np.isfinite(seen)))
                raise Diverged(f"{desc}: the objective is {seen[i]} after {i} Adam steps")
            bar.update(length)
            bar.set_postfix(loss=f"{float(values[-1]):.4f}")
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params)):
        raise Diverged(f"{desc}: the parameters are not finite after {args.steps} Adam steps")
    return params, np.concatenate(curve)


def class_probs(probs: np.ndarray) -> np.ndarray:
    """``[n, K]`` class probabilities (binary ``P(y=1)`` becomes ``[1 - p, p]``)."""
    return np.stack([1 - probs, probs], axis=1) if probs.ndim == 1 else probs


def figures(probs: ArrayLike, y: np.ndarray, num_classes: int, base) -> dict[str, float]:
    """Report figures for predicted class probabilities ``[n, K]``, in ``base``."""
    probs = jnp.asarray(probs, jnp.float32)
    onehot = jax.nn.one_hot(jnp.asarray(y), num_classes)
    empirical = jnp.mean(onehot, axis=0)
    mean_pred = jnp.mean(probs, axis=0)
    # jaxent never normalizes for you: a float32 mean is off by rounding, and the exact
    # KL of such an input can be a hair below 0, so normalize it here, explicitly.
    mean_pred = mean_pred / jnp.sum(mean_pred)
    return {
        "cross-entropy": float(jnp.mean(je.cross_entropy(onehot, probs, base=base))),
        "entropy of predictions": float(jnp.mean(je.entropy(probs, base=base))),
        "KL(mean predicted || empirical)": float(je.kl_divergence(mean_pred, empirical, base=base)),
    }


# The figures are float32 sums over the examples: below this they are rounding noise
# (a KL of two float32 class distributions that agree can come out at -2e-8).
_RESOLUTION = 1e-6


def _fmt(value: float, width: int) -> str:
    """Four decimals, two significant digits for small values, a bound below resolution."""
    if 0 < abs(value) < _RESOLUTION:
        text = f"<{_RESOLUTION:.0e}"
    else:
        text = f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return f"{text:>{width}s}"


def report(title: str, rows: dict[str, tuple]) -> str:
    header = f"{'':40s}{'jaxent nats':>12s}{'bits':>10s}{'sklearn nats':>14s}{'bits':>10s}"
    lines = [f"== {title} ==", header]
    for label, (ours_nats, ours_bits, sk_nats, sk_bits) in rows.items():
        if ours_bits is None:  # accuracy: no unit
            lines.append(f"{label:40s}{_fmt(ours_nats, 22)}{_fmt(sk_nats, 24)}")
        else:
            lines.append(
                f"{label:40s}{_fmt(ours_nats, 12)}{_fmt(ours_bits, 10)}"
                f"{_fmt(sk_nats, 14)}{_fmt(sk_bits, 10)}"
            )
    return "\n".join(lines)


def run_dataset(name: str, args, ax_loss, ax_hist) -> str:
    _, y = load(name)
    x_train, x_test, y_train, y_test = split_dataset(name, args.test_size, args.seed)
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train).astype(np.float32)
    x_test = scaler.transform(x_test).astype(np.float32)
    num_classes = int(y.max()) + 1
    l2 = 1.0 / (args.C * len(y_train))

    start = time.perf_counter()
    params, curve = train(jnp.asarray(x_train), jnp.asarray(y_train), num_classes, l2, args, name)
    seconds = time.perf_counter() - start
    clf = LogisticRegression(C=args.C, max_iter=5000).fit(x_train, y_train)

    # (jaxent nats, bits, scikit-learn nats, bits); no bits for the accuracy
    rows: dict[str, tuple[float, float | None, float, float | None]] = {}
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        ours = class_probs(np.asarray(logistic.predict_proba(params, xs)))
        theirs = clf.predict_proba(xs)
        ours_nats, ours_bits = (figures(ours, ys, num_classes, b) for b in (None, 2))
        sk_nats, sk_bits = (figures(theirs, ys, num_classes, b) for b in (None, 2))
        for key in ours_nats:
            rows[f"{split} {key}"] = (ours_nats[key], ours_bits[key], sk_nats[key], sk_bits[key])
        acc_ours = float(np.mean(ours.argmax(1) == ys))
        acc_theirs = float(np.mean(theirs.argmax(1) == ys))
        rows[f"{split} accuracy"] = (acc_ours, None, acc_theirs, None)
        if split == "test":
            entropy_bits = np.asarray(je.entropy(jnp.asarray(ours), base=2))
            correct = ours.argmax(1) == ys
            bins = np.linspace(0, np.log2(num_classes), 21)
            for group, label in ((correct, "correct"), (~correct, "wrong")):
                ax_hist.hist(
                    entropy_bits[group],
                    bins=bins,
                    weights=np.full(group.sum(), 1 / max(group.sum(), 1)),
                    alpha=0.6,
                    label=f"{label} ({group.sum()})",
                )
            ax_hist.set(
                title=f"{name}: test predictive entropy",
                xlabel="entropy of the prediction (bits)",
                ylabel="fraction of the group",
            )
            ax_hist.legend()

    # distance to the optimum found by the default (Newton) solver
    _, newton = logistic.fit(
        jnp.asarray(x_train), jnp.asarray(y_train), num_classes=num_classes, l2=l2
    )
    gap = np.maximum(curve - float(newton[-1]), 1e-8)
    ax_loss.plot(np.arange(1, len(curve) + 1), gap, label=name)
    title = (
        f"{name}: {len(y_train)} train / {len(y_test)} test, {num_classes} classes, "
        f"C={args.C}, Adam {args.steps} steps in {seconds:.1f} s"
    )
    return report(title, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fig_loss, ax_loss = plt.subplots(figsize=(6, 4))
    fig_hist, axes = plt.subplots(
        1, len(args.datasets), figsize=(5 * len(args.datasets), 4), squeeze=False
    )
    try:
        for name, ax_hist in zip(args.datasets, axes[0]):
            print(run_dataset(name, args, ax_loss, ax_hist), end="\n\n", flush=True)
    except Diverged as err:
        # Nothing is saved: plots of an earlier run stay as they were.
        plt.close(fig_loss)
        plt.close(fig_hist)
        print(
            f"python -m jaxent: error: training diverged on {err} (--learning-rate "
            f"{args.learning_rate}); try a smaller --learning-rate. No plots were saved.",
            file=sys.stderr,
        )
        return 1
    ax_loss.set(
        xlabel="Adam step",
        ylabel="objective - Newton optimum (nats)",
        yscale="log",
        title="Training objective (logistic.loss)",
    )
    ax_loss.legend()
    paths = [
        os.path.join(args.out, "loss_curve.png"),
        os.path.join(args.out, "predictive_entropy.png"),
    ]
    for fig, path in zip((fig_loss, fig_hist), paths):
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    print(
        "plots saved in "
        + os.path.abspath(args.out)
        + "/: "
        + ", ".join(os.path.basename(p) for p in paths)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
