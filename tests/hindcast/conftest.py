"""Fixtures of the hindcast tests: a SYNTHETIC ERA5 store on the GCS emulator, a tiny random
model, and a Dask cluster of two worker processes.

The store follows the ARCO-ERA5 layout (hourly, ``total_precipitation`` and TISR accumulated
over the hour) with 13 levels instead of 37, to keep it small, at its own ``gs://`` address:
2021-12-31T18 … 2022-01-02T12 on a 4° grid. Two-step forecasts fit it from 2022-01-01T06 to
2022-01-02T00.
"""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest

from graphcast_zero import synthetic
from graphcast_zero.checkpoint import save_checkpoint
from graphcast_zero.config import TASK_13
from graphcast_zero.hindcast import HindcastOptions
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources.layouts import ARCO

from ..conftest import OFFICIAL, TINY
from ..gcs_emulator import running_emulator, upload_folder

STORE = dataclasses.replace(
    ARCO, key="custom", url="gs://graphcast-zero-tests/arco-13.zarr", levels=13
)
STORE_START, STORE_HOURS = "2021-12-31T18", 43
RESOLUTION = 4.0
INITS = pd.date_range("2022-01-01T06", "2022-01-02T00", freq="6h")
STEPS = 2
CLIMATOLOGY_PERIOD = "2022-01-01T00/2022-01-02T12"
PARAMS_NAME = "tiny_random.npz"


@pytest.fixture(scope="package")
def era5_store(tmp_path_factory):
    """The store as a local Zarr folder."""
    folder = tmp_path_factory.mktemp("store") / "arco-13.zarr"
    return synthetic.write_era5_store(
        folder, STORE, start=STORE_START, hours=STORE_HOURS, resolution=RESOLUTION
    )


@pytest.fixture(scope="package")
def emulator(era5_store):
    """The emulator serving the store at ``STORE.url``; yields its endpoint."""
    with running_emulator() as url:
        upload_folder(url, STORE.url, era5_store)
        yield url


@pytest.fixture(scope="package")
def model_folder(tmp_path_factory) -> DataPaths:
    """A data folder with a tiny random checkpoint (resolution 0: any grid) and the fixture's
    statistics."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(OFFICIAL / "stats", root / "stats")
    lat, lon = synthetic.grid(RESOLUTION)
    checkpoint = synthetic.random_checkpoint(
        TINY, TASK_13, lat, lon, seed=3, description="tiny random weights for the hindcast tests"
    )
    save_checkpoint(checkpoint, root / "params" / PARAMS_NAME)
    return DataPaths(root)


@pytest.fixture(scope="package")
def cluster():
    """Two worker processes with two threads each, as `invoke hindcast` starts on a CPU."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def options(emulator: str, **changes) -> HindcastOptions:
    """The tests' campaign: every initialisation that fits the store, two steps each."""
    base = HindcastOptions(
        init_start=f"{INITS[0]:%Y-%m-%dT%H}", init_end=f"{INITS[-1]:%Y-%m-%dT%H}", every="6h",
        steps=STEPS, store=STORE.url, endpoint=emulator, resolution=RESOLUTION,
        climatology_period=CLIMATOLOGY_PERIOD,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)
