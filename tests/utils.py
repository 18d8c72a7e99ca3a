"""Shared test helpers: random inputs with exact zeros, float64 references."""

import numpy as np


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
