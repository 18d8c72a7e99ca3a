"""The documentation site builds in strict mode, and what its pages claim is true.

* ``test_docs_build_strict`` runs ``mkdocs build --strict`` into a temporary folder:
  broken links, missing pages, unresolvable ``:::`` API blocks and public functions on
  no API page (checked by docs/_ext/hooks.py) all fail it. Notebooks are rendered with
  their stored outputs, without executing them (tests/test_notebooks.py executes them).
  The built pages must load no script or stylesheet from another host: MathJax is served
  from the site (copied from the jupyter-server-mathjax package by the hooks).
* The package index shows README.md from the package's metadata, away from the
  repository: its relative links must have been made plain text (pyproject.toml).
* The other tests check the equivalences listed on docs/coming_from.md against SciPy,
  optax and scikit-learn, so that page cannot drift from the code.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxent as je

ROOT = Path(__file__).resolve().parents[1]
DOCS_TOOLCHAIN = (
    "mkdocs",
    "material",
    "mkdocstrings",
    "mkdocstrings_handlers.python",
    "mkdocs_jupyter",
    "jupyter_server_mathjax",
)


def _missing(modules):
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    missing = _missing(DOCS_TOOLCHAIN)
    if missing:
        pytest.skip(f"docs toolchain not installed ({', '.join(missing)}): pip install -e '.[dev]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in [
        "index.html",
        "coming_from/index.html",
        "api/categorical/index.html",
        "api/losses/index.html",
        "api/logistic/index.html",
        "notebooks/01_information_and_entropy/index.html",
        "notebooks/04_vectorized_experiments/index.html",
    ]:
        assert (site / page).is_file(), f"{page} missing from the built site"
    categorical = (site / "api/categorical/index.html").read_text(encoding="utf-8")
    assert 'id="jaxent.categorical.kl_divergence"' in categorical
    assert '<div class="arithmatex">' in categorical, "docstring math was not rendered"
    assert "<p>.. math::" not in categorical, "reST math leaked into the rendered docstrings"
    assert (site / "img/binary_entropy.png").is_file()

    # Offline: MathJax from the site, no script or stylesheet from another host.
    assert (site / "assets/mathjax/MathJax.js").is_file(), "MathJax was not copied into the site"
    assert (site / "assets/mathjax/LICENSE").is_file()
    mathjax = '<script src="../../assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full">'
    notebook = (site / "notebooks/01_information_and_entropy/index.html").read_text(
        encoding="utf-8"
    )
    assert mathjax in categorical
    assert mathjax in notebook
    remote = re.compile(
        r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//"
        r"|<link\b(?=[^>]*\brel=[\"']?stylesheet)[^>]*\bhref=[\"']?(?:https?:)?//",
        re.IGNORECASE,
    )
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    loading = [
        str(page.relative_to(site)) for page in pages if remote.search(page.read_text("utf-8"))
    ]
    assert not loading, f"pages loading a script or stylesheet from another host: {loading}"
    assert "text/x-mathjax-config" not in notebook, "nbconvert's MathJax block was not removed"

    # Tutorials published with their stored outputs: printed text and figures.
    assert "jp-OutputArea-output" in notebook
    assert re.search(r'<img\b[^>]*\bsrc="data:image/png;base64,', notebook), "no figure"


def test_readme_figure_is_small():
    figure = ROOT / "docs/img/binary_entropy.png"
    assert figure.is_file()
    assert figure.stat().st_size < 100_000, "keep committed figures under 100 KB"


def test_package_index_description_has_no_relative_links():
    # The long description of the installed jaxent (built from README.md by
    # hatch-fancy-pypi-readme): every link and image there must point to another host.
    description = importlib.metadata.metadata("jaxent").get_payload()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.splitlines()[0] in description
    assert re.search(r"\]\((?!https?://)", readme), "README.md has no relative link left to test"
    relative = re.findall(r"!?\[[^\]]*\]\((?!https?://)[^)]*\)", description)
    assert not relative, f"relative links in the package index description: {relative}"
    assert "`notebooks/01_information_and_entropy.ipynb` in the source distribution" in description


def test_index_example_values():
    # The snippet at the top of docs/index.md, with the values its comments claim.
    source = (ROOT / "docs/index.md").read_text(encoding="utf-8")
    snippet = source.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "docs/index.md", "exec"), namespace)  # noqa: S102
    p, q = namespace["p"], namespace["q"]
    assert float(je.entropy(p, base=2)) == 0.0
    np.testing.assert_allclose(je.cross_entropy(p, q, base=2), -np.log2(0.75), rtol=1e-6)
    np.testing.assert_allclose(je.kl_divergence(p, q, base=2), -np.log2(0.75), rtol=1e-6)
    assert np.isposinf(je.kl_divergence(q, p))


def test_checks_page_example_raises():
    # docs/api/checks.md: je.checked rejects a q that does not sum to 1.
    with pytest.raises((ValueError, jax.errors.JaxRuntimeError), match="sum"):
        je.checked(je.kl_divergence)([0.5, 0.5], [0.9, 0.2])


# ---- docs/coming_from.md: the equivalences it lists -------------------------------------

_rng = np.random.default_rng(0)  # the tables only; each test draws from its own ``rng``
P = _rng.dirichlet(np.ones(6), size=4)
Q = _rng.dirichlet(np.ones(6), size=4)
P[:, 0] = 0.0  # exact zeros in the support
P /= P.sum(-1, keepdims=True)


def test_scipy_equivalences():
    scipy_stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    distance = pytest.importorskip("scipy.spatial.distance")
    # float32 computation: a few ulps of ~1.
    tol = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(je.entropy(P), scipy_stats.entropy(P, axis=-1), **tol)
    np.testing.assert_allclose(
        je.entropy(P, base=2), scipy_stats.entropy(P, base=2, axis=-1), **tol
    )
    np.testing.assert_allclose(je.kl_divergence(P, Q), scipy_stats.entropy(P, Q, axis=-1), **tol)
    np.testing.assert_allclose(je.kl_divergence(P, Q), special.rel_entr(P, Q).sum(-1), **tol)
    np.testing.assert_allclose(je.kl_divergence(P, Q), special.kl_div(P, Q).sum(-1), **tol)
    np.testing.assert_allclose(je.cross_entropy(P, Q), -special.xlogy(P, Q).sum(-1), **tol)
    js_distance = [distance.jensenshannon(p, q) for p, q in zip(P, Q)]
    np.testing.assert_allclose(jnp.sqrt(je.js_divergence(P, Q)), js_distance, **tol)
    cov = np.array([[2.0, 0.3], [0.3, 0.5]])
    np.testing.assert_allclose(
        je.gaussian_entropy(cov), scipy_stats.multivariate_normal(np.zeros(2), cov).entropy(), **tol
    )
    np.testing.assert_allclose(je.surprisal(Q, base=2), -np.log2(Q), **tol)


def test_optax_equivalences(rng):
    optax = pytest.importorskip("optax")
    from jaxent import losses

    logits = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    labels = jnp.asarray(P, jnp.float32)
    ints = jnp.array([0, 3, 5, 2])
    tol = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(
        losses.softmax_cross_entropy(logits, labels),
        optax.losses.softmax_cross_entropy(logits, labels),
        **tol,
    )
    np.testing.assert_allclose(
        je.cross_entropy_from_logits(labels, logits),
        optax.losses.softmax_cross_entropy(logits, labels),
        **tol,
    )
    np.testing.assert_allclose(
        losses.softmax_cross_entropy_with_integer_labels(logits, ints),
        optax.losses.softmax_cross_entropy_with_integer_labels(logits, ints),
        **tol,
    )
    np.testing.assert_allclose(
        losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1),
        optax.losses.softmax_cross_entropy(logits, optax.smooth_labels(labels, 0.1)),
        **tol,
    )
    binary = jnp.asarray(rng.uniform(size=(4, 6)), jnp.float32)
    np.testing.assert_allclose(
        losses.sigmoid_binary_cross_entropy(logits, binary),
        optax.losses.sigmoid_binary_cross_entropy(logits, binary),
        **tol,
    )
    log_predictions = jax.nn.log_softmax(logits)
    targets = jnp.asarray(Q, jnp.float32)
    np.testing.assert_allclose(
        je.kl_divergence(targets, jnp.exp(log_predictions)),
        optax.losses.kl_divergence(log_predictions, targets),
        **tol,
    )
    np.testing.assert_allclose(
        je.kl_divergence_from_logits(jnp.log(targets), log_predictions),
        optax.losses.kl_divergence_with_log_targets(log_predictions, jnp.log(targets)),
        **tol,
    )


def test_sklearn_metric_equivalences(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    a = rng.integers(0, 3, size=200)
    b = (a + rng.integers(0, 2, size=200)) % 4
    pxy = jnp.zeros((3, 4)).at[a, b].add(1.0) / len(a)
    np.testing.assert_allclose(
        je.mutual_information(pxy), metrics.mutual_info_score(a, b), rtol=1e-5
    )
    for average in ("arithmetic", "geometric", "min", "max"):
        np.testing.assert_allclose(
            je.normalized_mutual_information(pxy, average=average),
            metrics.normalized_mutual_info_score(a, b, average_method=average),
            rtol=1e-5,
        )
    y = rng.integers(0, 2, size=50)
    p = rng.uniform(0.05, 0.95, size=50)
    np.testing.assert_allclose(
        jnp.mean(je.binary_cross_entropy(y, p)), metrics.log_loss(y, p), rtol=1e-5
    )
    yk = rng.integers(0, 6, size=4)
    np.testing.assert_allclose(
        jnp.mean(je.cross_entropy(jax.nn.one_hot(yk, 6), Q)),
        metrics.log_loss(yk, Q, labels=range(6)),
        rtol=1e-5,
    )


def test_sklearn_logistic_regression_equivalence(rng):
    linear_model = pytest.importorskip("sklearn.linear_model")
    from jaxent import logistic

    x = rng.normal(size=(120, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=120) > 0).astype(int)
    C = 0.5
    clf = linear_model.LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x, y)
    params, _ = logistic.fit(jnp.asarray(x, jnp.float32), jnp.asarray(y), l2=1 / (C * len(x)))
    # float32 fit vs float64 reference: agreement to float32 round-off of the optimum.
    np.testing.assert_allclose(params["w"], clf.coef_[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(params["b"], clf.intercept_[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        logistic.predict_proba(params, jnp.asarray(x, jnp.float32)),
        clf.predict_proba(x)[:, 1],
        atol=1e-5,
    )
