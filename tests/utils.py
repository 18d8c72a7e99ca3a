"""Shared test helpers: seeded generators, random inputs with exact zeros, float64 references."""

import os
import zlib
from pathlib import Path

import numpy as np
from hypothesis import settings

# The number of examples the tests' own ``max_examples`` were written for; the loaded
# profile (conftest.py: "jaxent" by default, "thorough" with HYPOTHESIS_PROFILE) scales them.
_BASE_EXAMPLES = 200

# The repository: the working directory of the tests' Python subprocesses.
REPO = Path(__file__).resolve().parents[1]

# The key of the report section that tests/test_accuracy.py fills and conftest.py prints.
ACCURACY_SECTION = "jaxent accuracy table"


def seeded_rng(key: str) -> np.random.Generator:
    """A generator seeded from ``key`` (a test's node id: the ``rng`` fixture)."""
    return np.random.default_rng(zlib.crc32(key.encode()))


def examples(n: int) -> settings:
    """``settings(max_examples=n)`` scaled by the loaded profile (fewer in the fast loop)."""
    return settings(max_examples=max(10, n * settings.default.max_examples // _BASE_EXAMPLES))


def random_probs(rng: np.random.Generator, shape, *, zeros: float = 0.3) -> np.ndarray:
    """Probability vectors along the last axis (float64), with exact zeros in them.

    Every row keeps at least one positive entry.
    """
    x = rng.gamma(0.5, size=shape)
    x = np.where(rng.random(shape) < zeros, 0.0, x)
    x[..., 0] = np.where(x.sum(-1) == 0, 1.0, x[..., 0])
    return x / x.sum(-1, keepdims=True)


def random_joint(rng: np.random.Generator, shape, *, zeros: float = 0.2) -> np.ndarray:
    """Joint tables ``[..., nx, ny]`` summing to 1 over the last two axes."""
    flat = random_probs(rng, shape[:-2] + (shape[-2] * shape[-1],), zeros=zeros)
    return flat.reshape(shape)


def level_flags() -> list[str]:
    """The optimization-level flag of ``XLA_FLAGS`` that conftest.py sets, as a list."""
    return [f for f in os.environ.get("XLA_FLAGS", "").split() if "optimization_level" in f]


def subprocess_env(xla_flags: list[str] | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a Python subprocess: the repository first on
    ``PYTHONPATH`` (jaxent and tests importable), ``XLA_FLAGS`` replaced when given."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if xla_flags is not None:
        env["XLA_FLAGS"] = " ".join(xla_flags)
    return env
