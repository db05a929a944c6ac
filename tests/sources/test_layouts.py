"""Each fact of the store layouts, checked against the generator's stores, and what a store that
breaks one is told."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graphcast_zero.errors import InputError
from graphcast_zero.sources import layouts

from .conftest import LAYOUTS


@pytest.mark.parametrize("key", ["arco", "wb2"])
def test_stores_are_zarr_2_with_consolidated_metadata_and_one_time_per_chunk(stores, key):
    metadata = json.loads((stores[key] / ".zmetadata").read_text())["metadata"]
    layout = LAYOUTS[key]
    for name in layout.variables():
        array = metadata[f"{name}/.zarray"]
        assert array["zarr_format"] == 2
        assert metadata[f"{name}/.zattrs"]["_ARRAY_DIMENSIONS"] == list(layout.dims_of(name))
        if layout.time_dim in layout.dims_of(name):
            assert array["chunks"][0] == 1 and array["chunks"][1:] == array["shape"][1:]


def test_the_facts_of_each_layout(opened):
    arco, wb2 = opened["arco"], opened["wb2"]
    assert arco.sizes["level"] == 37 and wb2.sizes["level"] == 13
    assert layouts.time_step_of(arco, layouts.ARCO) == pd.Timedelta("1h")
    assert layouts.time_step_of(wb2, layouts.WEATHERBENCH2) == pd.Timedelta("6h")
    for store in (arco, wb2):
        assert store.latitude.values[[0, -1]].tolist() == [90, -90]
        assert store.longitude.values[0] == 0 and store.longitude.values[-1] < 360
    assert arco["geopotential_at_surface"].dims == ("time", "latitude", "longitude")
    assert wb2["geopotential_at_surface"].dims == ("latitude", "longitude")
    assert "total_precipitation" in arco and "toa_incident_solar_radiation" in arco
    assert "total_precipitation_6hr" in wb2 and "toa_incident_solar_radiation" not in wb2
    # ARCO's axis runs past its data; its attributes say where the data ends (ERA5T included).
    assert layouts.valid_range(arco, layouts.ARCO) == (
        pd.Timestamp("2021-12-31T18"), pd.Timestamp("2022-01-02T06"),
    )  # fmt: skip
    assert np.isnan(arco["2m_temperature"].isel(time=-1).values).all()


def test_a_bare_stop_date_covers_its_whole_day(opened):
    store = opened["arco"].copy()
    store.attrs = {**store.attrs, "valid_time_stop_era5t": "2022-01-01"}
    assert layouts.valid_range(store, layouts.ARCO)[1] == pd.Timestamp("2022-01-01T23")


def test_detection_and_stores_that_break_a_fact(opened):
    arco, wb2 = opened["arco"], opened["wb2"]
    assert layouts.detect_layout(arco, layouts.ARCO.url) is layouts.ARCO
    other = layouts.detect_layout(wb2, "/my/copy.zarr")
    assert other.precipitation == "total_precipitation_6hr" and other.url is None
    layouts.check_layout(arco, layouts.ARCO, "x")
    flipped = arco.isel(latitude=slice(None, None, -1))
    with pytest.raises(InputError, match=r"latitudes run -90 → 90, not 90 → -90"):
        layouts.check_layout(flipped, layouts.ARCO, "x")
    with pytest.raises(InputError, match="has dims"):
        layouts.check_layout(
            arco.transpose("time", "level", "longitude", "latitude"), layouts.ARCO, "x"
        )
    with pytest.raises(InputError, match="neither the ARCO-ERA5 layout"):
        layouts.detect_layout(arco.drop_vars("total_precipitation"), "x")
