"""`invoke hindcast` end to end: its own local cluster, the emulator's store, a one-line error."""

from __future__ import annotations

import pytest

from graphcast_zero.hindcast import store

from ..sources.test_era5_fetch import run_invoke
from .conftest import INITS, PARAMS_NAME, RESOLUTION, STORE


@pytest.mark.slow
def test_hindcast_task_runs_on_a_local_cluster(emulator, model_folder, tmp_path, capsys):
    output = tmp_path / "task.zarr"
    code = run_invoke(
        "hindcast", "--init-start", f"{INITS[0]:%Y-%m-%dT%H}", "--init-end",
        f"{INITS[1]:%Y-%m-%dT%H}", "--every", "6h", "--steps", "2", "--variables",
        "2m_temperature,geopotential", "--levels", "500", "--store", STORE.url,
        "--endpoint", emulator, "--resolution", str(RESOLUTION), "--workers", "1",
        "--data-dir", str(model_folder.root), "--output", str(output),
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Dask: a local cluster of 1 workers (on the CPU), 2 threads each" in out
    assert "Forecast 2 initialisations" in out and f"Store: {output}" in out
    forecasts = store.open_forecasts(output)
    assert sorted(forecasts.data_vars) == ["2m_temperature", "geopotential"]
    assert forecasts["level"].values.tolist() == [500]
    assert forecasts.attrs["checkpoint"] == PARAMS_NAME
    assert store.completed(output).all()


def test_hindcast_task_stops_with_one_line_on_bad_options(model_folder, tmp_path, capsys):
    code = run_invoke(
        "hindcast", "--init-start", "2022-01-01T00", "--init-end", "2022-01-02T00", "--every",
        "90m", "--data-dir", str(model_folder.root), "--output", str(tmp_path / "never.zarr"),
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "--every '90m' must be a whole number of hours, e.g. 12h or 1d"
    assert not (tmp_path / "never.zarr").exists()
