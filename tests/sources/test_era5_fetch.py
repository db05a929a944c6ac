"""fetch-data --source era5 on the emulator, checked against the tests' own computation, then a
forecast from it: once from each store layout.

The expected values are taken from the stores with plain xarray by coordinate value, at chosen
points: the model's grid is a selection of the store's points (every 2nd point of the 2° store),
latitudes ascending, 6-hour precipitation the sum of six hourly values (ARCO) or the store's own
6-hour value (WeatherBench2), statics without time, TISR from the store or computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from invoke import Collection, Program

from graphcast_zero import fetch, solar, workflow
from graphcast_zero.config import ATMOSPHERIC_VARIABLES, PRESSURE_LEVELS_13, TOA_RADIATION
from graphcast_zero.errors import InputError
from graphcast_zero.sources.era5_fetch import plan_candidate

from ..test_tasks import load_tasks
from .conftest import LAYOUTS

INIT = pd.Timestamp("2022-01-01T06")
FRAMES = pd.date_range("2022-01-01T00", periods=6, freq="6h")
LATS, LONS = (-90.0, -2.0, 46.0, 90.0), (0.0, 180.0, 356.0)
SURFACE = ("2m_temperature", "mean_sea_level_pressure", "10m_u_component_of_wind")


def run_invoke(*argv: str) -> int:
    program = Program(namespace=Collection.from_module(load_tasks()), version="test")
    try:
        program.run(["invoke", *argv])
    except SystemExit as exit_:
        return exit_.code
    return 0


def at(field: xr.DataArray, store: bool) -> np.ndarray:
    """The chosen points of a field, by coordinate value."""
    names = ("latitude", "longitude") if store else ("lat", "lon")
    return field.sel({names[0]: list(LATS), names[1]: list(LONS)}).values


def expected_precipitation(store: xr.Dataset, key: str, when: pd.Timestamp) -> np.ndarray:
    if key == "wb2":
        return at(store["total_precipitation_6hr"].sel(time=when), True)
    hours = [when - pd.Timedelta(hours=k) for k in range(6)]
    hourly = at(store["total_precipitation"].sel(time=hours), True).astype(np.float64)
    return hourly.sum(axis=0).astype(np.float32)


def check_against_store(built: xr.Dataset, store: xr.Dataset, key: str, with_data: int) -> None:
    assert built.lat.values.tolist() == np.linspace(-90, 90, 46).tolist()
    assert built.lon.values.tolist() == (np.arange(90) * 4.0).tolist()
    assert built.level.values.tolist() == list(PRESSURE_LEVELS_13)
    assert (built.datetime.values[0] == FRAMES.values).all()
    assert (built.time.values == (FRAMES - FRAMES[0]).values).all()
    assert built["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    assert built["land_sea_mask"].dims == ("lat", "lon")
    assert all(built[name].dtype == np.float32 for name in built.data_vars)
    static = store["land_sea_mask"]
    static = static.isel(time=0) if "time" in static.dims else static
    np.testing.assert_array_equal(at(built["land_sea_mask"], False), at(static, True))
    for frame, when in enumerate(FRAMES[:with_data]):
        got = built.isel(batch=0, time=frame)
        for name in SURFACE:
            np.testing.assert_array_equal(
                at(got[name], False), at(store[name].sel(time=when), True)
            )
        for name in ATMOSPHERIC_VARIABLES[:2]:
            want = store[name].sel(time=when, level=[500, 850])
            np.testing.assert_array_equal(
                at(got[name].sel(level=[500, 850]), False), at(want, True)
            )
        # Both sides sum six float32 values in float64; only the summation order may differ.
        np.testing.assert_allclose(
            at(got["total_precipitation_6hr"], False), expected_precipitation(store, key, when),
            rtol=1e-6,
        )  # fmt: skip
        if key == "arco":
            want = at(store[TOA_RADIATION].sel(time=when), True)
            np.testing.assert_array_equal(at(got[TOA_RADIATION], False), want)
    for frame in range(with_data, len(FRAMES)):
        assert np.isnan(built["2m_temperature"].isel(batch=0, time=frame).values).all()
    if key == "wb2":  # no radiation in the store: computed for every frame, past its end too
        computed = solar.toa_incident_solar_radiation(
            FRAMES.values, built.lat.values, built.lon.values
        )
        np.testing.assert_array_equal(built[TOA_RADIATION].values[0], computed)


@pytest.mark.slow
def test_fetch_data_from_the_arco_layout_then_forecast(emulator, opened, model_folder, capsys):
    code = run_invoke(
        "fetch-data", "--source", "era5", "--init", "2022-01-01T06", "--steps", "4",
        "--resolution", "4.0", "--levels", "13", "--store", "arco", "--endpoint", emulator,
        "--data-dir", str(model_folder.root),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    path = model_folder.dataset / "source-era5_date-2022-01-01T00_res-4.0_levels-13_steps-04.nc"
    assert f"into {path}" in out and "MiB to read" in out
    assert sorted(p.name for p in model_folder.dataset.iterdir()) == [path.name]
    with xr.open_dataset(path, decode_timedelta=True) as built:
        check_against_store(built, opened["arco"], "arco", with_data=6)
        assert built.attrs["store"] == LAYOUTS["arco"].url
    result = workflow.run_inference(
        model_folder, dataset=path, run_name="arco", progress=False, log=lambda _: None
    )
    assert result.predictions.sizes["time"] == 4
    assert result.metrics.rmse.sizes["time"] == 4


@pytest.mark.slow
def test_forecast_from_the_weatherbench2_layout_past_its_end(emulator, opened, model_folder):
    # The store's last time is 2022-01-01T18: two targets, then two steps forecast only.
    lines = []
    report = fetch.fetch_data(
        data_dir=model_folder, source="era5", endpoint=emulator, progress=False, log=lines.append,
        era5=fetch.Era5Options(init="2022-01-01T06", steps=4, resolution=4.0, levels=13, store="wb2"),
    )  # fmt: skip
    path = report.files[-1].path
    assert any("forecast only" in line for line in lines)
    with xr.open_dataset(path, decode_timedelta=True) as built:
        check_against_store(built, opened["wb2"], "wb2", with_data=4)
    result = workflow.run_inference(
        model_folder, dataset=path, run_name="wb2", progress=False, log=lambda _: None
    )
    assert result.predictions.sizes["time"] == 4
    assert np.isfinite(result.predictions["2m_temperature"].values).all()
    assert result.metrics.rmse.sizes["time"] == 2  # only the lead times with targets
    names = {p.name for p in result.files}
    assert {"metrics.json", "map_2m_temperature_24h.png", "rmse_vs_lead_time.png"} <= names
    scored = workflow.score_run(model_folder, run="wb2")
    assert scored.metrics.rmse.sizes["time"] == 2


def test_auto_picks_the_cheapest_store_and_shows_both_sizes(emulator, tmp_path):
    lines = []
    report = fetch.fetch_data(
        data_dir=tmp_path, source="era5", endpoint=emulator, progress=False, log=lines.append,
        era5=fetch.Era5Options(init="2022-01-01T12", steps=1, resolution=4.0, levels=13),
    )  # fmt: skip
    sizes = [line for line in lines if "to read for init" in line]
    assert len(sizes) == 2 and LAYOUTS["arco"].url in sizes[0] and LAYOUTS["wb2"].url in sizes[1]
    levels = PRESSURE_LEVELS_13
    plans = {
        key: plan_candidate(
            LAYOUTS[key].url, INIT + pd.Timedelta("6h"), 1, 4.0, levels, emulator
        ).plan
        for key in LAYOUTS
    }
    # Here the 2° WeatherBench2 store holds 4x the points of the 4° ARCO one: ARCO is cheaper.
    cheapest = min(plans, key=lambda key: plans[key].chunk_bytes)
    assert plans["arco"].chunk_bytes != plans["wb2"].chunk_bytes
    with xr.open_dataset(report.files[-1].path) as built:
        assert built.attrs["store"] == LAYOUTS[cheapest].url


def test_latest_takes_the_newest_time_and_forecasts_past_it(emulator, tmp_path):
    report = fetch.fetch_data(
        data_dir=tmp_path, source="era5", endpoint=emulator, progress=False, log=lambda _: None,
        era5=fetch.Era5Options(init="latest", steps=2, resolution=4.0, levels=13, store="arco"),
    )  # fmt: skip
    with xr.open_dataset(report.files[-1].path) as built:
        assert built.attrs["init_time"] == "2022-01-02T06:00"
        assert np.isnan(built["temperature"].isel(time=slice(2, None)).values).all()
        assert np.isfinite(built[TOA_RADIATION].values).all()  # computed past the store's end


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(init="2022-01-03T00"), "outside the ARCO-ERA5 store's range"),
        (dict(init="2022-01-01T06:30"), "not on the ARCO-ERA5 store's 1-hour grid"),
        (dict(init="2022-01-01T09", store="wb2"), "not on the WeatherBench2 ERA5 store's 6-hour"),
        (dict(init="2022-01-01T06", store="wb2", resolution=3.0), "no grid point at latitude -87"),
        (dict(init="2022-01-01T06", store="wb2", levels=37), "lacks pressure levels [1, 2, 3"),
        (dict(init="tomorrow"), "is not a time"),
    ],
)
def test_requests_the_store_cannot_serve(emulator, tmp_path, options, message):
    options = {"steps": 2, "resolution": 4.0, "levels": 13, "store": "arco", **options}
    with pytest.raises(InputError, match=message.replace("[", r"\[")) as caught:
        fetch.fetch_data(
            data_dir=tmp_path, source="era5", endpoint=emulator, progress=False,
            log=lambda _: None, era5=fetch.Era5Options(**options),
        )  # fmt: skip
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "dataset").exists() or not list((tmp_path / "dataset").iterdir())
