"""What a run records about the machine it ran on: package versions and JAX's devices."""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys

# The packages whose versions a run records (``invoke doctor`` checks its own list).
RECORDED_PACKAGES = ("jax", "jaxlib", "dm-haiku", "optax", "xarray", "numpy", "graphcast-zero")


def package_versions() -> dict:
    """Python's and the recorded packages' versions (JAX is not started to read them)."""
    versions = {"python": sys.version.split()[0]}
    for package in RECORDED_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def environment_info() -> dict:
    """Package versions and the devices JAX sees, for ``run.json`` and ``training.json``."""
    import jax

    devices = jax.devices()
    return {
        "versions": package_versions(),
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
    }
