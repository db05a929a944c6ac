"""Hindcast campaigns for real: a Dask cluster of two worker processes, the SYNTHETIC ERA5 store on
the GCS emulator, a tiny random model.

One campaign runs once for the module (a worker is killed while it forecasts); the tests then
check it against single-process `fetch-data --source era5` + `run-inference` runs of the same
initialisations, its scores against the test's own computation, and what resuming, a second
campaign and a stale lock do.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero import fetch, workflow
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import run_hindcast, store
from graphcast_zero.hindcast.lock import LOCK_FILE, LockRecord
from graphcast_zero.paths import DataPaths

from .conftest import INITS, PARAMS_NAME, RESOLUTION, STEPS, STORE, options

pytestmark = pytest.mark.slow

LEADS = pd.to_timedelta(np.arange(1, STEPS + 1) * 6, unit="h")


@dataclasses.dataclass
class FirstRun:
    result: object
    output: object
    killed: list
    lines: list


def kill_a_busy_worker(client, killed: list):
    """An on_result callback that, at the first result, kills a worker that has tasks."""

    def on_result(result) -> None:
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        address = busy[0] if busy else next(iter(client.scheduler_info()["workers"]))
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        killed.append((address, pid, result.index))

    return on_result


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, emulator, model_folder, cluster) -> FirstRun:
    from distributed import Client

    output = tmp_path_factory.mktemp("campaign") / "hindcast.zarr"
    killed, lines = [], []
    with Client(cluster) as client:
        result = run_hindcast(
            model_folder, options(emulator, output=str(output), scheduler=cluster.scheduler_address),
            log=lines.append, progress=False, on_result=kill_a_busy_worker(client, killed),
        )  # fmt: skip
    return FirstRun(result, output, killed, lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, emulator, model_folder) -> dict:
    """Single-process runs of the same initialisations: {init: (dataset file, predictions)}."""
    root = tmp_path_factory.mktemp("reference")
    for part in ("params", "stats"):
        shutil.copytree(model_folder.root / part, root / part)
    paths = DataPaths(root)
    runs = {}
    for init in INITS:
        report = fetch.fetch_data(
            data_dir=paths, source="era5", endpoint=emulator, progress=False, log=lambda _: None,
            era5=fetch.Era5Options(
                init=f"{init:%Y-%m-%dT%H}", steps=STEPS, resolution=RESOLUTION, levels=13,
                store=STORE.url,
            ),
        )  # fmt: skip
        dataset = report.files[-1].path
        result = workflow.run_inference(
            paths, params=paths.params / PARAMS_NAME, dataset=dataset, progress=False,
            run_name=f"ref-{init:%Y%m%dT%H}", log=lambda _: None,
        )  # fmt: skip
        runs[init] = (dataset, result.predictions)
    return runs


def test_the_campaign_completes_although_a_worker_was_killed(first_run):
    result, output = first_run.result, first_run.output
    assert first_run.killed, "no worker was killed"
    assert sorted(r.index for r in result.results) == list(range(len(INITS)))  # each once
    assert result.total == len(INITS) and result.skipped == 0
    assert store.completed(output).all()
    forecasts = store.open_forecasts(output)
    np.testing.assert_array_equal(forecasts["time"].values, INITS.values)
    with open(result.reports / "per_init.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    per_init = pd.Series([row["init_time"] for row in rows]).value_counts()
    assert sorted(per_init.index) == [f"{init:%Y-%m-%dT%H:%M:%S}" for init in INITS]
    assert per_init.nunique() == 1  # the same number of rows for every forecast: none twice
    assert any("already complete, 4 to forecast" in line for line in first_run.lines)


def test_the_store_is_in_weatherbench2_forecast_layout(first_run, model_folder):
    forecasts = store.open_forecasts(first_run.output)
    assert forecasts["temperature"].dims == (
        "time", "prediction_timedelta", "level", "latitude", "longitude"
    )  # fmt: skip
    assert forecasts["2m_temperature"].dims == (
        "time", "prediction_timedelta", "latitude", "longitude"
    )  # fmt: skip
    np.testing.assert_array_equal(forecasts["prediction_timedelta"].values, LEADS.values)
    assert forecasts["latitude"].values[0] == -90 and forecasts["latitude"].values[-1] == 90
    assert forecasts["longitude"].values[0] == 0
    assert forecasts["temperature"].encoding["chunks"] == (1, 1, 13, 46, 90)
    attrs = forecasts.attrs
    assert attrs["checkpoint"] == PARAMS_NAME and len(attrs["checkpoint_sha256"]) == 64
    assert attrs["data_source"] == STORE.url and attrs["package"] == "graphcast-zero"
    assert attrs["package_version"]
    assert json.loads(attrs["task_config"])["pressure_levels"][0] == 50
    with open(first_run.output / ".zmetadata", encoding="utf-8") as handle:
        assert json.load(handle)["zarr_consolidated_format"] == 1  # Zarr 2, consolidated


def test_the_forecasts_equal_single_process_run_inference(first_run, reference):
    forecasts = store.open_forecasts(first_run.output)
    for init, (_, predictions) in reference.items():
        for name in predictions.data_vars:
            mine = forecasts[name].sel(time=init).values
            theirs = predictions[name].isel(batch=0).values  # (time, [level,] lat, lon)
            # The same compiled program on the same CPU, in another process: XLA may split a
            # reduction over its threads differently, so float32 rounding (1e-6 relative) is allowed.
            np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=0, err_msg=f"{init} {name}")


def area_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Each latitude row's share of the sphere: the band half a spacing either side of it (capped
    at the poles), normalised to mean 1."""
    half = np.deg2rad(RESOLUTION / 2)
    lat = np.deg2rad(lat_deg)
    band = np.sin(np.minimum(lat + half, np.pi / 2)) - np.sin(np.maximum(lat - half, -np.pi / 2))
    return band / band.mean()


def weighted_mean(field: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over the last two axes (lat, lon) with row weights of mean 1."""
    return (field * weights[:, None]).mean(axis=(-2, -1))


def climatology_by_hand(era5_store, name: str, level) -> dict[int, np.ndarray]:
    """Hour-of-day means of the period's 6-hourly frames, read from the store by coordinate
    (float64). Hour 18 has one frame in the period, so its anomalies of the truth are 0 and the
    ACC there is undefined (NaN) on both sides."""
    opened = xr.open_zarr(era5_store, chunks=None, decode_timedelta=True)
    frames = pd.date_range("2022-01-01T00", "2022-01-02T12", freq="6h")
    field = opened[name].sel(time=frames, latitude=np.linspace(-90, 90, 46))
    if level is not None:
        field = field.sel(level=level)
    values = field.values.astype(np.float64)  # [time, lat, lon]
    return {hour: values[frames.hour == hour].mean(axis=0) for hour in (0, 6, 12, 18)}


@pytest.mark.parametrize(("name", "level"), [("2m_temperature", None), ("temperature", 500)])
def test_the_scores_equal_the_tests_own_computation(first_run, reference, era5_store, name, level):
    forecasts = store.open_forecasts(first_run.output)
    weights = area_weights(forecasts["latitude"].values)
    climatology = climatology_by_hand(era5_store, name, level)
    saved = store.read_scores(first_run.output)
    squared, biases, correlations = [], [], []
    for index, (init, (dataset, _)) in enumerate(reference.items()):
        truth = xr.open_dataset(dataset, decode_timedelta=True)[name].isel(batch=0)
        forecast = forecasts[name].sel(time=init)
        if level is not None:
            truth, forecast = truth.sel(level=level), forecast.sel(level=level)
        truth = truth.values.astype(np.float64)  # [frame, lat, lon]
        targets, last_input = truth[2:], truth[1]
        error = forecast.values.astype(np.float64) - targets  # [lead, lat, lon]
        rmse = np.sqrt(weighted_mean(error**2, weights))
        persistence = np.sqrt(weighted_mean((last_input - targets) ** 2, weights))
        valid_hours = (init + LEADS).hour
        # The store keeps the climatology in float32, as the forecasts.
        normal = np.stack([climatology[hour] for hour in valid_hours]).astype(np.float32)
        anomaly_f, anomaly_t = forecast.values - normal, targets - normal
        with np.errstate(invalid="ignore"):
            acc = weighted_mean(anomaly_f * anomaly_t, weights) / np.sqrt(
                weighted_mean(anomaly_f**2, weights) * weighted_mean(anomaly_t**2, weights)
            )
        level_of = {"level": level} if level is not None else {}
        # float64 both sides from the same float32 fields; only summation order differs.
        for field, expected in (("rmse", rmse), ("bias", weighted_mean(error, weights)),
                                ("acc", acc), ("persistence_rmse", persistence)):  # fmt: skip
            np.testing.assert_allclose(
                saved[field][name].isel(time=index).sel(level_of).values,
                expected,
                rtol=1e-6,
                err_msg=field,
            )
        squared.append(rmse**2)
        biases.append(weighted_mean(error, weights))
        correlations.append(acc)
    campaign = first_run.result.metrics
    # The campaign's RMSE is the root of the mean squared error over every forecast.
    np.testing.assert_allclose(
        campaign.rmse[name].sel(level_of).values, np.sqrt(np.mean(squared, axis=0)), rtol=1e-6
    )
    np.testing.assert_allclose(
        campaign.bias[name].sel(level_of).values, np.mean(biases, axis=0), rtol=1e-6
    )
    # Undefined ACCs (hour 18) are left out of the campaign's mean.
    np.testing.assert_allclose(
        campaign.acc[name].sel(level_of).values, np.nanmean(correlations, axis=0), rtol=1e-6
    )
    stored = xr.open_zarr(
        first_run.output, group="hindcast/climatology", chunks=None, decode_timedelta=True
    )
    kept = stored[name].sel(level_of) if level is not None else stored[name]
    for hour, expected in climatology.items():
        # Means of the same float32 values in float64, rounded to float32 when stored.
        np.testing.assert_allclose(kept.sel(hour=hour).values, expected, rtol=1e-6)


def test_the_report_files_are_written(first_run):
    folder = first_run.result.reports
    assert folder == first_run.output.parent / "hindcast.scores"
    names = {p.name for p in first_run.result.files}
    assert names == {"per_init.csv", "metrics.json", "metrics.csv", "rmse_vs_lead_time.png",
                     "hindcast.json"}  # fmt: skip
    record = json.loads((folder / "hindcast.json").read_text())
    assert record["forecasts_complete"] == len(INITS) and record["this_run"]["forecasts"] == 4
    assert record["this_run"]["inits_per_hour"] > 0
    assert (folder / "rmse_vs_lead_time.png").stat().st_size > 10_000
    assert not (first_run.output / "hindcast" / LOCK_FILE).exists()  # released


def test_running_again_skips_every_complete_forecast(first_run, emulator, model_folder):
    chunk = first_run.output / "2m_temperature" / "0.0.0.0"
    before = chunk.stat().st_mtime_ns
    lines = []
    result = run_hindcast(
        model_folder, options(emulator, output=str(first_run.output), scheduler="tcp://0.0.0.0:1"),
        log=lines.append, progress=False,
    )  # fmt: skip
    # Nothing to do: no cluster is contacted (the scheduler address is unreachable).
    assert result.skipped == len(INITS) and result.results == []
    assert any("4 already complete, 0 to forecast" in line for line in lines)
    assert chunk.stat().st_mtime_ns == before


def test_a_forecast_cut_off_half_way_is_redone(
    first_run, emulator, model_folder, cluster, tmp_path
):
    output = tmp_path / "copy.zarr"
    shutil.copytree(first_run.output, output)
    before = store.open_forecasts(output)["temperature"].isel(time=2).values
    half = xr.Dataset(
        {"temperature": store.open_forecasts(output)["temperature"].isel(time=[2]) * 0}
    )
    store.write_forecast(output, 2, half)
    xr.Dataset({"complete": ("time", np.zeros(1, np.int8))}).to_zarr(
        output, group="hindcast", region={"time": slice(2, 3)}, mode="r+"
    )  # as if the worker died between the forecast and its completion mark
    result = run_hindcast(
        model_folder, options(emulator, output=str(output), scheduler=cluster.scheduler_address),
        log=lambda _: None, progress=False,
    )  # fmt: skip
    assert [r.index for r in result.results] == [2] and result.skipped == 3
    after = store.open_forecasts(output)["temperature"].isel(time=2).values
    np.testing.assert_array_equal(after, before)  # the same program and window, in a worker
    assert store.completed(output).all()


def test_a_second_campaign_on_the_same_store_is_refused(emulator, model_folder, cluster, tmp_path):
    output = tmp_path / "busy.zarr"
    first = options(
        emulator, output=str(output), scheduler=cluster.scheduler_address,
        init_end=f"{INITS[0]:%Y-%m-%dT%H}",
    )  # fmt: skip
    release = threading.Event()
    outcome = {}

    def hold(_result) -> None:
        release.wait(60)

    def campaign() -> None:
        outcome["result"] = run_hindcast(
            model_folder, first, log=lambda _: None, progress=False, on_result=hold
        )

    thread = threading.Thread(target=campaign)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (output / "hindcast" / LOCK_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(InputError, match="being written by another hindcast") as caught:
            run_hindcast(model_folder, first, log=lambda _: None, progress=False)
        assert "\n" not in str(caught.value) and "last heartbeat" in str(caught.value)
    finally:
        release.set()
        thread.join(120)
    assert len(outcome["result"].results) == 1


def test_a_stale_lock_is_taken_over_only_with_break_lock(
    first_run, emulator, model_folder, tmp_path
):
    output = tmp_path / "stale.zarr"
    shutil.copytree(first_run.output, output)
    old = time.time() - 3600
    record = LockRecord(owner="gone:123", campaign="dead", started=old, heartbeat=old)
    (output / "hindcast" / LOCK_FILE).write_text(json.dumps(dataclasses.asdict(record)))
    settings = options(emulator, output=str(output))
    with pytest.raises(InputError, match="stale lock.*--break-lock") as caught:
        run_hindcast(model_folder, settings, log=lambda _: None, progress=False)
    assert "gone:123" in str(caught.value) and "60 min ago" in str(caught.value)
    result = run_hindcast(
        model_folder, dataclasses.replace(settings, break_lock=True), log=lambda _: None,
        progress=False,
    )  # fmt: skip
    assert result.skipped == len(INITS)
    assert not (output / "hindcast" / LOCK_FILE).exists()
