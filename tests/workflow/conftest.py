"""Shared fixtures of the workflow tests: the official-small fixture as a data folder, one
forecast through the workflow, and a compilation cache for this package and its subprocesses.

Compiles are shared through the persistent cache, so each distinct program compiles once for all
the workflow test modules.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from graphcast_zero import rollout, workflow
from graphcast_zero.paths import DataPaths

from ..conftest import FIXTURE_DATASET, OFFICIAL

DATASET_NAME = FIXTURE_DATASET.name
PARAMS_NAME = "random_small.npz"


@pytest.fixture(scope="package")
def compile_cache(tmp_path_factory):
    """One on-disk compilation cache for the workflow tests and the invoke subprocesses they start."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    folder = tmp_path_factory.mktemp("jax-cache")
    saved = {
        name: getattr(jax.config, name)
        for name in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield folder
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def copy_fixture(folder: Path) -> DataPaths:
    """A data folder with the fixture's params/, stats/ and dataset/ (no outputs)."""
    for part in ("params", "stats", "dataset"):
        shutil.copytree(OFFICIAL / part, folder / part)
    return DataPaths(folder)


@pytest.fixture(scope="package")
def forecast(tmp_path_factory, compile_cache):
    """One forecast through the workflow, with what rollout.predict returned to it."""
    paths = copy_fixture(tmp_path_factory.mktemp("data"))
    returned = {}
    original = rollout.predict

    def spy(*args, **kwargs):
        returned.update(original(*args, **kwargs))
        return returned

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollout, "predict", spy)
        result = workflow.run_inference(paths, run_name="first", progress=False, log=lambda _: None)
    return paths, result, returned


def assert_picture(path: Path, frames: int = 1) -> None:
    assert path.stat().st_size > 5_000, path
    with Image.open(path) as image:
        assert getattr(image, "n_frames", 1) == frames
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 10 and min(image.size) > 200, path


def replace_dataset(paths: DataPaths, change) -> Path:
    path = paths.dataset / DATASET_NAME
    changed = change(xr.load_dataset(path))
    path.unlink()
    changed.to_netcdf(path)
    return path
