"""Where a campaign's windows come from: an official-layout dataset, or an ERA5 store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero import sources, synthetic
from graphcast_zero.config import PRESSURE_LEVELS_13
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import source
from graphcast_zero.sources.layouts import WEATHERBENCH2

from ..conftest import FIXTURE_DATASET

INITS = pd.date_range("2022-01-01T06", "2022-01-01T18", freq="6h")


def test_an_official_layout_dataset_is_a_source_of_windows():
    spec = source.resolve_source(str(FIXTURE_DATASET), None, INITS, 1, None, PRESSURE_LEVELS_13)
    assert spec.kind == source.OFFICIAL and spec.resolution == 4.0
    dataset = xr.open_dataset(FIXTURE_DATASET, decode_timedelta=True)
    lat, lon = source.grid(spec)
    np.testing.assert_array_equal(lat, dataset["lat"].values)
    window = source.window(spec, INITS[1], 2)  # frames 06, 12 (init), 18, 00
    np.testing.assert_array_equal(
        window["datetime"].values[0], pd.date_range("2022-01-01T06", periods=4, freq="6h").values
    )
    expected = sources.window_at(dataset, INITS[1], 2, 2)
    np.testing.assert_array_equal(window["temperature"].values, expected["temperature"].values)


@pytest.mark.parametrize(
    ("inits", "steps", "message"),
    [
        (pd.date_range("2022-01-01T06", periods=3, freq="3h"), 1, "not a multiple of the 6-hour"),
        (INITS, 3, "no 2 input frames ending at 2022-01-01 18:00:00 followed by 3 frames"),
    ],
)
def test_an_official_dataset_must_hold_every_window(inits, steps, message):
    with pytest.raises(InputError, match=message):
        source.resolve_source(str(FIXTURE_DATASET), None, inits, steps, None, PRESSURE_LEVELS_13)


@pytest.fixture(scope="module")
def wb2_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wb2") / "wb2.zarr"
    return synthetic.write_era5_store(
        folder, WEATHERBENCH2, start="2022-01-01T00", hours=24, resolution=4.0
    )


def test_an_era5_store_is_planned_on_the_first_and_last_window(wb2_store):
    spec = source.resolve_source(str(wb2_store), None, INITS[:2], 1, 4.0, PRESSURE_LEVELS_13)
    assert spec.kind == source.ERA5 and spec.resolution == 4.0
    lat, lon = source.grid(spec)
    assert lat.tolist() == np.linspace(-90, 90, 46).tolist() and lon[-1] == 356
    window = source.window(spec, INITS[0], 1)
    assert window["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    store = xr.open_zarr(wb2_store, chunks=None, decode_timedelta=True)
    # Latitudes ascending on the model grid, the store's values at the same points.
    np.testing.assert_array_equal(
        window["2m_temperature"].isel(batch=0, time=1).sel(lat=-86.0).values,
        store["2m_temperature"].sel(time=INITS[0], latitude=-86.0, longitude=lon).values,
    )
    # Targets past the store's end are allowed (forecast only), inputs are not.
    assert source.resolve_source(str(wb2_store), None, INITS, 1, 4.0, PRESSURE_LEVELS_13) == spec
    late = pd.date_range("2022-01-01T18", "2022-01-02T00", freq="6h")
    with pytest.raises(InputError, match="--init 2022-01-02T00 is outside the WeatherBench2"):
        source.resolve_source(str(wb2_store), None, late, 1, 4.0, PRESSURE_LEVELS_13)
    with pytest.raises(InputError, match="pass --resolution"):
        source.resolve_source(str(wb2_store), None, INITS[:2], 1, None, PRESSURE_LEVELS_13)
