"""Shared pytest fixtures. Tests are offline, small and fast; reference data lives in tests/data/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from graphcast_zero.config import DEMO_MODEL

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


@pytest.fixture
def run_invoke(capsys):
    """Runs `invoke ARGS...` in this process; returns (exit code, stdout, stderr)."""
    from invoke import Collection, Program

    from .test_tasks import load_tasks

    def run(*argv: str) -> tuple[int, str, str]:
        program = Program(namespace=Collection.from_module(load_tasks()), version="test")
        try:
            program.run(["invoke", *argv])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def repo_root() -> Path:
    """The repository's top folder (where tasks.py and README.md live)."""
    return REPO_ROOT


DATA_DIR = TESTS_DIR / "data"
OFFICIAL = DATA_DIR / "official-small"
REAL_STATS = DATA_DIR / "real-stats"
FIXTURE_DATASET = OFFICIAL / "dataset" / "source-fake_date-2022-01-01_res-4.0_levels-13_steps-04.nc"


class OfficialBundle:
    """The official-small fixture loaded once: checkpoint, statistics, dataset and model arrays.

    Predictors are cached per (precision, gather_first_layer) so the session compiles each once.
    """

    def __init__(self):
        import jax
        import xarray as xr

        from graphcast_zero.checkpoint import load_checkpoint
        from graphcast_zero.statistics import load_statistics

        self.checkpoint = load_checkpoint(OFFICIAL / "params" / "random_small.npz")
        self.model_config = self.checkpoint.model_config
        self.task_config = self.checkpoint.task_config
        self.statistics = load_statistics(OFFICIAL / "stats")
        self.dataset = xr.load_dataset(FIXTURE_DATASET)
        self.lat = self.dataset.lat.values
        self.lon = self.dataset.lon.values
        self.params = jax.tree.map(jax.numpy.asarray, self.checkpoint.params)
        self.inputs, _, self.forcings = self.extract(steps=4)
        self.lead_times = np.arange(1, 5) * np.timedelta64(6, "h")
        self._predictors = {}
        self._graphs = None

    def extract(self, steps: int):
        from graphcast_zero import data

        inputs, targets, forcings = data.extract_inputs_targets_forcings(
            self.dataset, self.task_config, slice("6h", f"{6 * steps}h")
        )
        return (
            data.dataset_to_arrays(inputs),
            data.dataset_to_arrays(targets),
            data.dataset_to_arrays(forcings),
        )

    def predictor(self, precision: str = "float32", gather_first_layer: bool = True):
        from graphcast_zero.predictor import build_predictor

        key = (precision, gather_first_layer)
        if key not in self._predictors:
            self._predictors[key] = build_predictor(
                self.model_config,
                self.task_config,
                self.statistics,
                self.lat,
                self.lon,
                precision=precision,
                gather_first_layer=gather_first_layer,
                graphs=self._graphs,
            )
            self._graphs = self._predictors[key].graphs
        return self._predictors[key]


@pytest.fixture(scope="session")
def official_bundle() -> OfficialBundle:
    return OfficialBundle()


# A one-refinement mesh and 8-wide latents: the smallest model that runs every code path.
TINY = dataclasses.replace(DEMO_MODEL.model_config, mesh_size=1, latent_size=8, gnn_msg_steps=1)


def tiny_dataset():
    """The fixture dataset on the tiny model's grid (every 3rd latitude, every 2nd longitude)."""
    import xarray as xr

    return xr.load_dataset(FIXTURE_DATASET).isel(lat=slice(None, None, 3), lon=slice(None, None, 2))


@pytest.fixture(scope="session")
def tiny():
    """A tiny float32 model on a coarsened fixture grid: (predictor, params, (inputs, targets,
    forcings)) with two target steps."""
    import jax
    import jax.numpy as jnp

    from graphcast_zero import data
    from graphcast_zero.config import TASK_13
    from graphcast_zero.model.graphcast import init_params
    from graphcast_zero.predictor import build_predictor
    from graphcast_zero.statistics import load_statistics

    dataset = tiny_dataset()
    lat, lon = dataset.lat.values, dataset.lon.values
    predictor = build_predictor(
        TINY, TASK_13, load_statistics(OFFICIAL / "stats"), lat, lon, precision="float32"
    )
    params = jax.tree.map(
        jnp.asarray, init_params(TINY, TASK_13, lat, lon, seed=1, graphs=predictor.graphs)
    )
    inputs, targets, forcings = data.extract_inputs_targets_forcings(
        dataset, TASK_13, slice("6h", "12h")
    )
    arrays = tuple(data.dataset_to_arrays(d) for d in (inputs, targets, forcings))
    return predictor, params, arrays
