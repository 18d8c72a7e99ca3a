"""Losses with optax's conventions: predictions first, one loss per example, nats."""

from jaxent.losses._fused import fused_linear_cross_entropy as fused_linear_cross_entropy
from jaxent.losses._parallel import (
    vocab_parallel_cross_entropy as vocab_parallel_cross_entropy,
)
from jaxent.losses._sigmoid import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from jaxent.losses._softmax import softmax_cross_entropy as softmax_cross_entropy
from jaxent.losses._softmax import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)

__all__ = [
    "fused_linear_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "vocab_parallel_cross_entropy",
]
