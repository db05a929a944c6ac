"""fetch-data --source ecmwf-open-data against a local copy of ECMWF's open-data server, with the
real ``ecmwf-opendata`` client, then a forecast from the built dataset; and each way it can fail.

The server (:mod:`tests.open_data_server`) serves GRIB2 files and index files written with ecCodes
from the project's generator, at 2° (the main runs) or 4° (the broken ones). The expected values
are the generator's own fields at chosen points, taken by coordinate in the open data's order
(latitudes 90 → -90, longitudes -180 → 180), converted as the test says: geopotential =
geopotential height × 9.80665 in float64, rounded once to float32.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero import synthetic
from graphcast_zero.atomic import write_netcdf
from graphcast_zero.checkpoint import save_checkpoint
from graphcast_zero.config import DEMO_MODEL, PRESSURE_LEVELS_13, TASK_13_PRECIP_OUT
from graphcast_zero.errors import FetchError, InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources.open_data_fetch import fetch_open_data

from ..open_data_server import LEVELS, data_path, serving, write_run

NOW = pd.Timestamp.now("UTC").tz_convert(None).floor("6h")
OFF_HOUR = pd.Timestamp("2026-05-11T06")  # before IFS 50r1: the 06 UTC run is in stream scda
BROKEN = {  # init -> how its run is broken (4° grid)
    "missing": pd.Timestamp("2025-01-10T06"),
    "no statics": pd.Timestamp("2025-01-11T06"),
    "truncated": pd.Timestamp("2025-01-12T06"),
    "wrong grid": pd.Timestamp("2025-01-13T06"),
    "partial": pd.Timestamp("2025-01-14T06"),
    "wrong run": pd.Timestamp("2025-01-15T06"),
}
LATS, LONS = (-90.0, -2.0, 46.0, 90.0), (0.0, 180.0, 356.0)
SURFACE = {
    "2t": "2m_temperature",
    "msl": "mean_sea_level_pressure",
    "10u": "10m_u_component_of_wind",
}
SIX_HOURS = pd.Timedelta(hours=6)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server, with the runs the tests ask for; yields (url, recorded requests)."""
    root = tmp_path_factory.mktemp("open-data")
    for init in (NOW, OFF_HOUR):
        for run in (init - SIX_HOURS, init):
            write_run(root, run, 2.0)
    options = {
        "missing": dict(drop=[("q", 500), ("w", 850)]),
        "no statics": dict(drop=[("lsm", None), ("z", None)]),
        "wrong grid": dict(wrong_grid=("t", 850)),
        "wrong run": dict(message_run=BROKEN["wrong run"] - SIX_HOURS),
    }
    for case, init in BROKEN.items():
        write_run(root, init - SIX_HOURS, 4.0)
        path = write_run(root, init, 4.0, **options.get(case, {}))
        if case == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    cut = {data_path(BROKEN["partial"]): 5000}
    with serving(root, cut=cut) as (url, requests):
        yield url, requests


@pytest.fixture
def data(tmp_path) -> DataPaths:
    return DataPaths(tmp_path / "data")


def build(data: DataPaths, mirror: str, init, **options) -> Path:
    """fetch_open_data on the 4° grid, one step, quietly, with short pauses between tries."""
    options = {"steps": 1, "resolution": 4.0, "log": lambda _: None, "retry_after": 0.05, **options}
    return fetch_open_data(data, init=init if isinstance(init, str) else f"{init:%Y-%m-%dT%H}",
                           mirror=mirror, **options)  # fmt: skip


def expected(run: pd.Timestamp, param: str, level=None, scale: float = 1.0) -> np.ndarray:
    """The generator's field at the chosen points, by coordinate, in the open data's order."""
    lat, lon, fields = synthetic.make_open_data_fields(run, 2.0, LEVELS)
    rows = [int(np.flatnonzero(np.isclose(lat, value))[0]) for value in LATS]
    east = [(value + 180) % 360 - 180 for value in LONS]  # the open data's -180 … 180
    cols = [int(np.flatnonzero(np.isclose(lon, value))[0]) for value in east]
    stored = fields[(param, level)].astype(np.float32)  # the files hold IEEE float32
    return (stored[np.ix_(rows, cols)].astype(np.float64) * scale).astype(np.float32)


def at(field: xr.DataArray) -> np.ndarray:
    return field.sel(lat=list(LATS), lon=list(LONS)).values


def check_against_generator(built: xr.Dataset, init: pd.Timestamp, steps: int) -> None:
    frames = pd.date_range(init - SIX_HOURS, periods=2 + steps, freq="6h")
    assert built.lat.values.tolist() == np.linspace(-90, 90, 46).tolist()
    assert built.lon.values.tolist() == (np.arange(90) * 4.0).tolist()
    assert built.level.values.tolist() == list(PRESSURE_LEVELS_13)
    assert (built.datetime.values[0] == frames.values).all()
    assert built["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    assert all(built[name].dtype == np.float32 for name in built.data_vars)
    assert built.attrs["source"] == "hres" and built.attrs["init_time"] == f"{init:%Y-%m-%dT%H:%M}"
    for frame, run in enumerate(frames[:2]):
        got = built.isel(batch=0, time=frame)
        for param, name in SURFACE.items():
            np.testing.assert_array_equal(at(got[name]), expected(run, param))
        for level in (50, 500, 1000):
            np.testing.assert_array_equal(
                at(got["temperature"].sel(level=level)), expected(run, "t", level)
            )
            np.testing.assert_array_equal(
                at(got["geopotential"].sel(level=level)), expected(run, "gh", level, 9.80665)
            )
            np.testing.assert_array_equal(
                at(got["specific_humidity"].sel(level=level)), expected(run, "q", level)
            )
    np.testing.assert_array_equal(at(built["land_sea_mask"]), expected(init, "lsm"))
    np.testing.assert_array_equal(at(built["geopotential_at_surface"]), expected(init, "z"))
    # No input or target after the two analyses, and no precipitation at all: forecast only.
    assert np.isnan(built["2m_temperature"].isel(time=slice(2, None)).values).all()
    assert np.isnan(built["total_precipitation_6hr"].values).all()
    assert np.isfinite(built["toa_incident_solar_radiation"].values).all()  # computed throughout


def write_operational_shaped_model(paths: DataPaths, resolution: float = 4.0) -> None:
    """Random weights in the operational model's task (13 levels, precipitation output only) on
    a tiny architecture for the grid, and the generator's statistics."""
    config = dataclasses.replace(
        DEMO_MODEL.model_config, resolution=resolution, mesh_size=2, latent_size=8, gnn_msg_steps=1
    )
    lat, lon = synthetic.grid(resolution)
    checkpoint = synthetic.random_checkpoint(
        config, TASK_13_PRECIP_OUT, lat, lon, description="random, operational-shaped (test)"
    )
    save_checkpoint(checkpoint, paths.params / "random operational-shaped.npz")
    for name, stats in synthetic.make_statistics(4.0, steps=2).items():
        write_netcdf(stats, paths.stats / f"{name}.nc")


@pytest.mark.slow
def test_latest_run_then_a_forecast_with_maps(server, data, run_invoke):
    url, requests = server
    code, out, err = run_invoke(
        "fetch-data", "--source", "ecmwf-open-data", "--init", "latest", "--steps", "4",
        "--resolution", "4.0", "--mirror", url, "--data-dir", str(data.root),
    )  # fmt: skip
    assert code == 0, err
    path = (
        data.dataset
        / f"source-hres_date-{NOW - SIX_HOURS:%Y-%m-%dT%H}_res-4.0_levels-13_steps-04.nc"
    )
    assert f"Newest run on the open-data copy ({url}): {NOW:%Y-%m-%dT%H}" in out
    assert sorted(p.name for p in data.dataset.iterdir()) == [path.name]
    assert list(data.cache.iterdir()) == []  # the downloads are gone
    with xr.open_dataset(path, decode_timedelta=True) as built:
        check_against_generator(built, NOW, steps=4)
        assert "lsm and z at step 0" in built.attrs["statics_source"]
    # The client read the index files and asked for byte ranges, several in one request.
    paths = {p for _, p, _ in requests}
    assert data_path(NOW).replace(".grib2", ".index") in paths
    assert any("," in byte_ranges for _, p, byte_ranges in requests if p == data_path(NOW))

    write_operational_shaped_model(data)
    code, out, err = run_invoke(
        "run-inference", "--data-dir", str(data.root), "--run-name", "today",
        "--variable", "2m_temperature,geopotential:500", "--lead-time", "6h,24h",
        "--region", "20,70,-30,40",
    )  # fmt: skip
    assert code == 0, err
    run = data.outputs / "today"
    names = {p.name for p in run.iterdir()}
    assert {
        "predictions.nc",
        "run.json",
        "map_2m_temperature_6h.png",
        "map_2m_temperature_24h.png",
        "map_geopotential_500hPa_6h.png",
        "map_geopotential_500hPa_24h.png",
        "2m_temperature.gif",
        "geopotential_500hPa.gif",
    } == names  # fmt: skip  (no targets: no metrics, no RMSE chart)
    with xr.open_dataset(run / "predictions.nc", decode_timedelta=True) as predictions:
        assert predictions.sizes["time"] == 4
        assert np.isfinite(predictions["2m_temperature"].values).all()
    assert "0 of 4 steps have targets" in out


def test_off_hour_run_from_its_stream(server, data):
    url, requests = server
    lines = []
    path = build(data, url, OFF_HOUR, steps=2, log=lines.append)
    # 00 UTC from stream oper, 06 UTC (before cycle 50r1) from stream scda, as the client chose.
    fetched = {p for _, p, _ in requests if p.endswith(".grib2")}
    assert data_path(OFF_HOUR) in fetched and "/scda/" in data_path(OFF_HOUR)
    assert data_path(OFF_HOUR - SIX_HOURS) in fetched and "/oper/" in data_path(
        OFF_HOUR - SIX_HOURS
    )
    with xr.open_dataset(path, decode_timedelta=True) as built:
        check_against_generator(built, OFF_HOUR, steps=2)
        assert "/scda/" in built.attrs["files"]


def test_statics_from_the_bucket_example_when_the_open_data_lacks_them(server, data):
    url, _ = server
    init = f"{BROKEN['no statics']:%Y-%m-%dT%H}"
    with pytest.raises(
        InputError, match="lacks the statics .*invoke fetch-data --model operational"
    ):
        build(data, url, init)
    assert list(data.dataset.iterdir()) == []
    example = synthetic.make_example_dataset(resolution=1.0, steps=1, seed=3)
    example_name = "source-hres_date-2022-01-01_res-0.25_levels-13_steps-01.nc"
    write_netcdf(example, data.dataset / example_name)  # a 1° stand-in under the 0.25° name
    path = build(data, url, init)
    with xr.open_dataset(path) as built:
        assert (
            example_name in built.attrs["statics_source"]
            and "lsm, z" in built.attrs["statics_source"]
        )
        for name in ("land_sea_mask", "geopotential_at_surface"):
            np.testing.assert_array_equal(at(built[name]), at(example[name]))


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        (
            "missing",
            InputError,
            r"lacks w 850 hPa \(vertical_velocity\), q 500 hPa \(specific_humidity\), which",
        ),
        (
            "wrong grid",
            InputError,
            r"t at 850 hPa .* is on a 45×23 grid .* the other fields on a 90×46",
        ),
        ("truncated", FetchError, r"pl fields .* stayed incomplete after 3 tries"),
        ("partial", FetchError, r"stayed incomplete after 3 tries"),
        ("wrong run", InputError, r"is not step 0 of the 2025-01-15T06 run"),
    ],
)
def test_broken_runs_are_one_line_errors_and_leave_nothing(server, data, case, error, message):
    url, _ = server
    with pytest.raises(error, match=message) as caught:
        build(data, url, BROKEN[case])
    assert "\n" not in str(caught.value)
    assert not data.dataset.exists() or list(data.dataset.iterdir()) == []
    assert list(data.cache.iterdir()) == []


def test_a_run_the_mirror_does_not_keep(server, data):
    url, _ = server
    retention = "does not have the 2024-12-31T18 UTC run: ECMWF's server keeps recent days only"
    with pytest.raises(InputError, match=f"{retention}; the cloud mirrors") as caught:
        build(data, url, "2025-01-01T00")
    assert "\n" not in str(caught.value)
    assert not data.dataset.exists() or list(data.dataset.iterdir()) == []


def test_no_network_is_a_one_line_error(data):
    from ..gcs_emulator import free_port

    refused = f"http://127.0.0.1:{free_port()}"
    for init in ("latest", "2025-01-10T06"):
        with pytest.raises(
            FetchError, match=f"cannot reach the open-data copy at {refused}"
        ) as caught:
            build(data, refused, init)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(init="2025-01-10T03"), "not the time of an IFS run: .* 00, 06, 12 and 18 UTC"),
        (dict(init="2099-01-01T00"), "is in the future"),
        (dict(init="soon"), "is not a time"),
        (dict(resolution=0.3), "multiple of the open data's 0.25° spacing"),
        (dict(mirror="ftp://somewhere"), "is not an open-data source"),
        (dict(model="small"), "reads precipitation as an input"),
        (dict(steps=-1), "--steps must be at least 1"),
    ],
)
def test_bad_options_fail_before_any_download(data, options, message):
    options = {"init": "2025-01-10T06", "mirror": "http://127.0.0.1:9", **options}
    with pytest.raises(InputError, match=message):
        build(data, **options)


def test_without_the_realtime_extra_the_message_names_it(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "ecmwf.opendata", None)  # as if not installed
    with pytest.raises(
        InputError, match=r'needs the `realtime` extra .*pip install -e "\.\[realtime\]"'
    ):
        build(data, "http://127.0.0.1:9", "2025-01-10T06")
