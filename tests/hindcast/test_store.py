"""The hindcast store: WeatherBench2's forecast layout, one region per forecast, completion last."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import store

INITS = pd.date_range("2022-01-01", periods=3, freq="12h").values
LEADS = (np.arange(1, 3) * np.timedelta64(6, "h")).astype("m8[ns]")
LAT, LON = np.linspace(-90, 90, 5), np.arange(8) * 45.0
FINGERPRINT = {"steps": 2, "source": "gs://somewhere/store.zarr"}


def make_store(path):
    template = store.forecast_template(
        INITS, LEADS, ("2m_temperature", "temperature"), (500, 850), LAT, LON
    )
    store.create_store(path, template, FINGERPRINT, {"checkpoint": "model.npz"})
    return template


def one_forecast(value: float, init) -> xr.Dataset:
    """A forecast of one initialisation in the store's layout, every value ``value``."""
    surface = np.full((1, 2, 5, 8), value, np.float32)
    levels = np.full((1, 2, 2, 5, 8), value, np.float32)
    return xr.Dataset(
        {
            "2m_temperature": (store.forecast_dims("2m_temperature"), surface),
            "temperature": (store.forecast_dims("temperature"), levels),
        },
        coords={"time": [init]},
    )


def test_a_new_store_holds_the_whole_time_axis_and_no_forecast(tmp_path):
    make_store(tmp_path / "h.zarr")
    opened = xr.open_zarr(
        tmp_path / "h.zarr", consolidated=True, chunks=None, decode_timedelta=True
    )
    assert opened["temperature"].dims == (
        "time", "prediction_timedelta", "level", "latitude", "longitude"
    )  # fmt: skip
    np.testing.assert_array_equal(opened["time"].values, INITS)
    np.testing.assert_array_equal(opened["prediction_timedelta"].values, LEADS)
    assert opened["temperature"].encoding["chunks"] == (1, 1, 2, 5, 8)
    assert np.isnan(opened["2m_temperature"].values).all()
    assert opened.attrs["checkpoint"] == "model.npz"
    assert not store.completed(tmp_path / "h.zarr").any()
    assert set(store.read_scores(tmp_path / "h.zarr")) == set(store.SCORE_FIELDS)


def test_a_forecast_lands_in_its_own_region_and_completes_last(tmp_path):
    path = tmp_path / "h.zarr"
    make_store(path)
    store.write_forecast(path, 1, one_forecast(7.0, INITS[1]))
    assert not store.completed(path).any()  # written but not yet marked
    store.mark_complete(path, 1, seconds=2.5)
    opened = store.open_forecasts(path)
    assert (opened["temperature"].isel(time=1).values == 7).all()
    assert np.isnan(opened["temperature"].isel(time=[0, 2]).values).all()
    assert store.completed(path).tolist() == [False, True, False]
    assert store.read_status(path)["forecast_seconds"].values[1] == 2.5
    # Chunks only for that initialisation: the others own theirs.
    assert sorted(p.name for p in (path / "2m_temperature").glob("[0-9]*")) == [
        "1.0.0.0",
        "1.1.0.0",
    ]


def test_an_existing_store_must_be_the_same_campaign(tmp_path):
    path = tmp_path / "h.zarr"
    make_store(path)
    store.check_fingerprint(path, FINGERPRINT)
    with pytest.raises(InputError, match=r"holds another campaign \(steps: 2, now 40\)") as caught:
        store.check_fingerprint(path, {**FINGERPRINT, "steps": 40})
    assert "\n" not in str(caught.value)
    (tmp_path / "other.zarr").mkdir()
    with pytest.raises(InputError, match="is not a hindcast store"):
        store.check_fingerprint(tmp_path / "other.zarr", FINGERPRINT)
    stored = json.loads(
        xr.open_zarr(path, chunks=None, decode_timedelta=True).attrs[store.FINGERPRINT_ATTR]
    )
    assert stored == FINGERPRINT


def test_scores_are_written_per_forecast(tmp_path):
    path = tmp_path / "h.zarr"
    template = make_store(path)
    scores = store.scores_template(template.isel(time=[2]), lazy=False)
    scores["temperature"][:] = 3.0
    store.write_scores(path, 2, {"rmse": scores})
    read = store.read_scores(path)
    assert read["rmse"]["temperature"].dims == ("time", "prediction_timedelta", "level")
    assert (read["rmse"]["temperature"].isel(time=2).values == 3).all()
    assert np.isnan(read["rmse"]["temperature"].isel(time=[0, 1]).values).all()
    assert np.isnan(read["bias"]["temperature"].values).all()
