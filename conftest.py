"""Test configuration: float64 references need x64; 8 host devices for sharding tests."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

settings.register_profile("jaxent", deadline=None, max_examples=200)
settings.load_profile("jaxent")
