"""Synthetic ERA5 stores in the ARCO-ERA5 and WeatherBench2 layouts, local and on the emulator.

Both come from the project's generator (:func:`graphcast_zero.synthetic.write_era5_store`):
ARCO hourly with 37 levels on a 4° grid, 2021-12-31T18 … 2022-01-02T06 plus two NaN hours after
its valid range; WeatherBench2 6-hourly with 13 levels on a 2° grid, 2022-01-01T00 … T18 plus one
NaN time. On the emulator they sit at the public stores' own addresses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr

from graphcast_zero import synthetic
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources.layouts import ARCO, WEATHERBENCH2

from ..conftest import OFFICIAL
from ..gcs_emulator import running_emulator, upload_folder

STORE_OPTIONS = {
    "arco": dict(start="2021-12-31T18", hours=37, resolution=4.0, padding=2),
    "wb2": dict(start="2022-01-01T00", hours=24, resolution=2.0, padding=1),
}
LAYOUTS = {"arco": ARCO, "wb2": WEATHERBENCH2}


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> dict[str, Path]:
    """The two stores as local Zarr folders."""
    folder = tmp_path_factory.mktemp("stores")
    return {
        key: synthetic.write_era5_store(folder / f"{key}.zarr", LAYOUTS[key], **options)
        for key, options in STORE_OPTIONS.items()
    }


@pytest.fixture(scope="session")
def opened(stores) -> dict[str, xr.Dataset]:
    """The stores opened with plain xarray, for the tests' own computations."""
    return {key: xr.open_zarr(path, chunks=None) for key, path in stores.items()}


@pytest.fixture(scope="session")
def emulator(stores):
    """The emulator serving both stores at their public addresses."""
    with running_emulator() as url:
        for key, path in stores.items():
            upload_folder(url, LAYOUTS[key].url, path)
        yield url


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> DataPaths:
    """A data folder with the fixture's checkpoint (resolution 0: any grid) and statistics."""
    root = tmp_path_factory.mktemp("data")
    for part in ("params", "stats"):
        shutil.copytree(OFFICIAL / part, root / part)
    return DataPaths(root)
