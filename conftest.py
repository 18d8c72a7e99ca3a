"""Test configuration: float64 references need x64; 8 host devices for sharding tests.

* ``XLA_FLAGS`` asks for 8 host CPU devices before JAX starts. Under pytest-xdist every
  worker is a fresh Python process that imports this file first, so each worker has its
  8 devices too. It also turns LLVM's optimizations off (unless ``XLA_FLAGS`` names a
  level): most of the suite's time is compiling, this cuts it by about a quarter, and
  the results are the default level's to a few ulps (``tests/test_xla_levels.py``).
  The subprocesses (demo, notebooks) inherit it; the sharding test passes it on.
* JAX's persistent compilation cache (``.jax_cache/`` in the repository, or wherever
  ``JAX_COMPILATION_CACHE_DIR`` points; ``JAX_COMPILATION_CACHE_DIR=`` turns it off):
  most of the suite's time is XLA compiling small programs, and a second run loads
  them instead (the fast loop ``pytest -m "not slow"``: about 3x faster on a repeat
  run). Set in the environment, so the subprocesses (demo, notebooks, sharding) share
  it. The cache is keyed on the program, the JAX version and the flags, so a stale
  entry is never used.
* ``rng``: a NumPy generator seeded from the test's node id, so a test draws the same
  numbers on every run, alone or in any order, on any xdist worker.
* ``variant``: a test that takes it runs twice, with ``variant`` = ``jax.jit`` and with
  the identity (eager), the plain-pytest form of ``@chex.variants(with_jit=True,
  without_jit=True)``.
* Hypothesis: the default profile runs a moderate number of examples for the fast
  loop; ``HYPOTHESIS_PROFILE=thorough`` runs many more (and a test's own
  ``max_examples`` scales with the profile, see ``tests/utils.examples``).
* Tests marked ``slow`` run first, so that pytest-xdist starts the long ones while
  the short ones fill the other workers.
"""

import inspect
import os

_DEVICES = "--xla_force_host_platform_device_count=8"
# LLVM's optimizations off: the suite compiles about a quarter faster, and the numbers
# are those of the default level (which users run) to a few ulps: no fast-math at any
# level, only another order of some sums (tests/test_xla_levels.py checks it).
_LEVEL = "--xla_backend_optimization_level=0"
for flag, name in (
    (_DEVICES, "xla_force_host_platform_device_count"),
    (_LEVEL, "xla_backend_optimization_level"),
):
    if name not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(__file__), ".jax_cache")
)
# Cache every program: the suite's are small and many (JAX's default skips those
# compiled in under a second).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax
import numpy as np
import pytest
from hypothesis import settings

from tests.utils import ACCURACY_SECTION, seeded_rng

jax.config.update("jax_enable_x64", True)

# derandomize: the examples depend on the test alone (like the ``rng`` fixture);
# print_blob lets a failure be replayed with @reproduce_failure.
settings.register_profile("jaxent", deadline=None, max_examples=50, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jaxent"))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's node id (reproducible, order-independent)."""
    return seeded_rng(request.node.nodeid)


# The keyword options of jax.jit (static_argnames, ...): the eager variant takes them too.
_JIT_OPTIONS = frozenset(inspect.signature(jax.jit).parameters) - {"fun"}


@pytest.fixture(params=["jit", "eager"])
def variant(request):
    """``jax.jit`` (id ``jit``) or the identity (id ``eager``): ``variant(fn, **options)``.

    The options are ``jax.jit``'s keywords; the eager variant checks their names and
    ignores them. As with chex's variants, a test that takes the fixture and never
    calls it fails.
    """
    calls = 0

    def wrap(fn, **options):
        nonlocal calls
        unknown = set(options) - _JIT_OPTIONS
        if unknown:
            raise TypeError(f"variant() got options jax.jit does not take: {sorted(unknown)}")
        calls += 1
        return jax.jit(fn, **options) if request.param == "jit" else fn

    yield wrap
    if calls == 0:
        pytest.fail(f"{request.node.nodeid} takes the variant fixture but never calls it")


def pytest_collection_modifyitems(config, items):
    # Stable sort: slow tests first, each group in collection order.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_terminal_summary(terminalreporter):
    # The accuracy table of tests/test_accuracy.py, from whichever worker ran it.
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        for title, content in getattr(report, "sections", []):
            if ACCURACY_SECTION in title:
                terminalreporter.write_line(content)
