"""The climatology for ACC: computed from the source by hour of day, or read from a store in
WeatherBench2's climatology layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero.config import PRESSURE_LEVELS_13
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import climatology
from graphcast_zero.hindcast.campaign import Campaign
from graphcast_zero.hindcast.source import OFFICIAL, SourceSpec
from graphcast_zero.sources.layouts import zarr_format_options

from ..conftest import FIXTURE_DATASET

MODEL_LAT, MODEL_LON = np.linspace(-90, 90, 46), np.arange(90) * 4.0


def campaign(inits=None, variables=("2m_temperature", "temperature"), levels=(500,)) -> Campaign:
    spec = SourceSpec(str(FIXTURE_DATASET), None, OFFICIAL, 4.0, PRESSURE_LEVELS_13)
    inits = pd.date_range("2022-01-01T06", "2022-01-01T18", freq="6h") if inits is None else inits
    return Campaign(inits, 1, variables, levels, spec, None, "auto")


def test_the_period_is_six_hourly_on_the_initialisations_hours():
    frames = climatology.period_frames("2022-01-01T02/2022-01-02T00", campaign())
    assert frames[0] == pd.Timestamp("2022-01-01T06") and frames[-1] == pd.Timestamp(
        "2022-01-02T00"
    )
    # By default the verifying period: first initialisation to last valid time (steps 1 here) …
    assert len(climatology.period_frames(None, campaign())) == 4
    # … or to the last time the source holds.
    end = pd.Timestamp("2022-01-01T12")
    assert list(climatology.period_frames(None, campaign(), end).hour) == [6, 12]
    single = campaign(inits=pd.DatetimeIndex(["2022-01-01T12"]))
    assert list(climatology.period_frames(None, single, end).hour) == [6, 12]
    with pytest.raises(InputError, match="must be START/END"):
        climatology.period_frames("2022-01-01", campaign())
    with pytest.raises(InputError, match="fewer than two 6-hourly times"):
        climatology.period_frames("2022-01-01T06/2022-01-01T09", campaign())


def test_blocks_never_hold_a_single_frame():
    frames = pd.date_range("2022-01-01", periods=17, freq="6h")
    assert [count for _, count in climatology.blocks(frames)] == [8, 9]
    assert [count for _, count in climatology.blocks(frames[:10])] == [8, 2]


def test_computed_means_by_hour_over_blocks_equal_the_means_by_hand(monkeypatch, tmp_path):
    monkeypatch.setattr(climatology, "FRAMES_PER_BLOCK", 4)
    plan = campaign()
    frames = climatology.period_frames("2022-01-01T00/2022-01-02T06", plan)  # the file's 6 frames
    partials = [climatology.block_sums(plan, first, n) for first, n in climatology.blocks(frames)]
    assert len(partials) == 2
    means = climatology.combine(partials)
    assert means["temperature"].dims == ("hour", "level", "latitude", "longitude")
    dataset = xr.open_dataset(FIXTURE_DATASET, decode_timedelta=True).isel(batch=0)
    for name, where in (("2m_temperature", {}), ("temperature", {"level": 500})):
        values = dataset[name].sel(where).values.astype(np.float64)  # [time, lat, lon]
        by_hand = {0: values[[0, 4]].mean(0), 6: values[[1, 5]].mean(0), 12: values[2],
                   18: values[3]}  # fmt: skip
        for hour, expected in by_hand.items():
            # float64 means of the same float32 values, rounded to float32 once.
            np.testing.assert_allclose(
                means[name].sel(hour=hour, **where).values, expected, rtol=1e-6
            )
    path = tmp_path / "store.zarr"
    climatology.write_computed(path, means, "by hour over the fixture")
    spec = climatology.computed_spec(path)
    assert spec.description == "by hour over the fixture" and climatology.has_computed(path)
    fields = climatology.fields_at(
        spec, np.array(["2022-01-01T18", "2022-01-02T06"], "M8[ns]"), plan.variables,
        plan.levels, MODEL_LAT, MODEL_LON,
    )  # fmt: skip
    assert fields["temperature"].dims == ("time", "level", "lat", "lon")
    np.testing.assert_array_equal(fields["temperature"].values[1], means["temperature"].sel(hour=6))


def wb2_value(hour, dayofyear, level, lat, lon):
    """The analytic field of the test's WeatherBench2-layout climatology."""
    return 1000.0 * hour + dayofyear + level / 1000 + lat / 100 + lon / 10_000


@pytest.fixture(scope="module")
def wb2_climatology(tmp_path_factory):
    """A climatology store in WeatherBench2's layout: 2° grid, latitudes 90 → -90."""
    coords = {
        "hour": np.array([0, 6, 12, 18]), "dayofyear": np.arange(1, 367),
        "level": np.array([500, 850]), "latitude": np.linspace(90, -90, 91),
        "longitude": np.arange(180) * 2.0,
    }  # fmt: skip
    grid = np.meshgrid(*coords.values(), indexing="ij")
    levels = wb2_value(*grid).astype(np.float32)
    store = xr.Dataset(
        {
            "temperature": (tuple(coords), levels),
            "2m_temperature": (("hour", "dayofyear", "latitude", "longitude"), levels[:, :, 0]),
        },
        coords=coords,
    )
    path = tmp_path_factory.mktemp("climatology") / "wb2.zarr"
    store.to_zarr(path, consolidated=True, **zarr_format_options())
    return climatology.ClimatologySpec(str(path), None, None, "test")


@pytest.mark.slow
def test_a_weatherbench2_climatology_is_read_at_each_valid_time(wb2_climatology):
    valid = np.array(["2022-01-01T06", "2022-03-01T18"], "M8[ns]")  # day of year 1 and 60
    fields = climatology.fields_at(
        wb2_climatology, valid, ("2m_temperature", "temperature"), (850,), MODEL_LAT, MODEL_LON
    )
    assert fields["temperature"].dims == ("time", "level", "lat", "lon")
    lat, lon = np.meshgrid(MODEL_LAT, MODEL_LON, indexing="ij")
    expected = wb2_value(18, 60, 850, lat, lon).astype(np.float32)
    np.testing.assert_array_equal(fields["temperature"].values[1, 0], expected)
    expected = wb2_value(6, 1, 500, lat, lon).astype(np.float32)  # the surface one: level 500
    np.testing.assert_array_equal(fields["2m_temperature"].values[0], expected)
    climatology.check_climatology(wb2_climatology, campaign(levels=(850,)), MODEL_LAT, MODEL_LON)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(variables=("geopotential",)), "lacks geopotential: choose --variables it has"),
        (dict(inits=pd.DatetimeIndex(["2022-01-01T03"])), r"has hours \[0, 6, 12, 18\]"),
        (dict(levels=(700,)), r"lacks levels \[700\]"),
    ],
)
def test_a_climatology_that_lacks_something_is_a_one_line_error(wb2_climatology, change, message):
    with pytest.raises(InputError, match=message) as caught:
        climatology.check_climatology(wb2_climatology, campaign(**change), MODEL_LAT, MODEL_LON)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="has no latitude -88.5"):
        lat = np.linspace(-88.5, 88.5, 60)
        climatology.check_climatology(wb2_climatology, campaign(), lat, MODEL_LON)
