"""The forecast task end to end on the official-small fixture: files, parity, bad inputs, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import workflow
from graphcast_zero.checkpoint import load_checkpoint, save_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.workflow import MapOptions

from ..conftest import OFFICIAL, REPO_ROOT
from .conftest import DATASET_NAME, PARAMS_NAME, copy_fixture, replace_dataset


@pytest.mark.slow
def test_forecast_writes_every_file(forecast):
    paths, result, _ = forecast
    assert result.run_dir == paths.outputs / "first"
    names = sorted(p.name for p in result.run_dir.iterdir())
    assert names == sorted(
        ["predictions.nc", "metrics.json", "metrics.csv", "run.json",
         "map_2m_temperature_24h.png", "2m_temperature.gif", "rmse_vs_lead_time.png"]
    )  # fmt: skip
    assert sorted(p.name for p in paths.outputs.iterdir()) == ["first"]  # no staging left


@pytest.mark.slow
def test_predictions_file_is_what_the_rollout_returned(forecast):
    _, result, returned = forecast
    written = xr.load_dataset(result.predictions_path)
    assert written["2m_temperature"].dims == ("batch", "time", "lat", "lon")
    assert written["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    np.testing.assert_array_equal(written.time.values, np.arange(1, 5) * np.timedelta64(6, "h"))
    assert str(written.datetime.values[0, 0]).startswith("2022-01-01T12")
    for name, array in returned.items():  # [batch, steps, lat, lon, channels]
        values = written[name].values
        values = values[..., None] if values.ndim == 4 else np.moveaxis(values, 2, -1)
        np.testing.assert_array_equal(values, array, err_msg=name)


def assert_matches_official(predictions: Path, reference: str, worst: float, mean: float):
    """Every variable within ``worst`` σ (max) and ``mean`` σ (mean) of the official rollout,
    σ the standard deviation of the official predictions (as in tests/test_parity.py)."""
    written = xr.load_dataset(predictions)
    official = xr.load_dataset(OFFICIAL / "reference" / reference)
    for name in official.data_vars:
        difference = np.abs(written[name].transpose(*official[name].dims).values - official[name])
        sigma = float(official[name].std())
        assert float(difference.max()) <= worst * sigma, name
        assert float(difference.mean()) <= mean * sigma, name


@pytest.mark.slow
def test_predictions_match_the_official_float32_rollout(forecast):
    _, result, _ = forecast
    assert json.loads((result.run_dir / "run.json").read_text())["precision"] == "float32"
    # The parity tests' float32 tolerances: max 1e-3 σ, mean 1e-4 σ.
    assert_matches_official(result.predictions_path, "predictions_float32.nc", 1e-3, 1e-4)


@pytest.mark.slow
def test_a_bfloat16_forecast_matches_the_official_bfloat16_rollout(tmp_path, compile_cache):
    paths = copy_fixture(tmp_path / "data")
    result = workflow.run_inference(paths, precision="bfloat16", run_name="bf16",
                                    progress=False, log=lambda _: None)  # fmt: skip
    assert json.loads((result.run_dir / "run.json").read_text())["precision"] == "bfloat16"
    # The parity tests' bfloat16 tolerances: max 0.15 σ, mean 2e-2 σ.
    assert_matches_official(result.predictions_path, "predictions.nc", 0.15, 2e-2)


@pytest.mark.slow
def test_run_json_records_inputs_versions_device_and_timings(forecast):
    paths, result, _ = forecast
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["inputs"]["params"] == str(paths.params / PARAMS_NAME)
    assert info["inputs"]["dataset"] == str(paths.dataset / DATASET_NAME)
    # The default precision, auto, is float32 on a CPU.
    assert info["steps"] == 4 and info["precision"] == "float32"
    assert info["model_config"]["mesh_size"] == 3 and info["task_config"]["input_duration"] == "12h"
    assert {"jax", "dm-haiku", "xarray", "graphcast-zero"} <= set(info["versions"])
    assert info["device"]["platform"] == "cpu"
    timings = info["timings"]
    assert timings["graph_build_s"] > 0 and timings["compile_and_first_chunk_s"] > 0
    assert timings["graphs_from_cache"] is False  # first run on this grid: built, then saved
    assert len(list((paths.cache / "graphs").glob("graphs-mesh3-46x90-*.npz"))) == 1
    assert 0 < timings["per_step_s"] < timings["total_s"]
    # A 4,140-node grid is one chunk: nothing to choose, nothing compiled to choose it.
    plan = info["memory"]
    assert plan["grid_chunks"] == 1 and plan["how_chosen"] == "given" and plan["tried"] == []


def _nan_input(dataset):
    dataset["2m_temperature"][0, 0, 5, 5] = np.nan
    return dataset


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_resolution(paths: DataPaths) -> None:
    path = paths.params / PARAMS_NAME
    checkpoint = load_checkpoint(path)
    model = dataclasses.replace(checkpoint.model_config, resolution=1.0)
    save_checkpoint(dataclasses.replace(checkpoint, model_config=model), path)


BAD_INPUTS = {
    "wrong resolution": (
        _other_resolution,
        {"dataset": f"dataset/{DATASET_NAME}"},
        "has a 4° grid but the model needs 1°: pick a res-1",
    ),
    "no fitting dataset": (_other_resolution, {}, "has resolution 4° but the model needs 1°"),
    "missing variable": (
        lambda p: replace_dataset(p, lambda d: d.drop_vars("vertical_velocity")),
        {},
        "lacks vertical_velocity",
    ),
    "NaNs": (lambda p: replace_dataset(p, _nan_input), {}, "2m_temperature has 1 NaN/inf"),
    "truncated NetCDF": (lambda p: _truncate(p.dataset / DATASET_NAME), {}, "cannot be read"),
    "truncated checkpoint": (
        lambda p: _truncate(p.params / PARAMS_NAME),
        {},
        "checkpoint is truncated or corrupt",
    ),
    "too few time steps": (lambda p: None, {"steps": 5}, "use --steps 4"),
    "unknown precision": (lambda p: None, {"precision": "half"}, "auto, bfloat16, float32"),
    "negative grid chunks": (lambda p: None, {"grid_chunks": -1}, "--chunks must be 0"),
    "bad region": (lambda p: None, {"maps": MapOptions(region="north")}, "is not four numbers"),
    "unknown map variable": (
        lambda p: None,
        {"maps": MapOptions(variable="2m_temperature,snow")},
        "no 'snow' in the predictions",
    ),
    "lead time past the forecast": (
        lambda p: None,
        {"steps": 2, "maps": MapOptions(lead_time="6h,24h")},
        "--lead-time '24h' is not a predicted lead time: choose one of 6h, 12h",
    ),
    "unwritable output": (
        lambda p: (p.root / "blocker").write_text(""),
        {"output": "blocker/out/p.nc"},
        "is not writable",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_fail_in_one_line_before_writing(case, tmp_path):
    prepare, options, message = BAD_INPUTS[case]
    paths = copy_fixture(tmp_path / "data")
    prepare(paths)
    for key in {"output", "dataset"} & set(options):
        options = {**options, key: str(paths.root / options[key])}
    with pytest.raises(InputError) as raised:
        workflow.run_inference(paths, progress=False, log=lambda _: None, **options)
    assert "\n" not in str(raised.value) and message in str(raised.value)
    assert not paths.outputs.exists() or not list(paths.outputs.iterdir())


@pytest.mark.slow
def test_a_failure_while_writing_leaves_no_run_folder(forecast, monkeypatch):
    paths, _, _ = forecast

    def broken(*args, **kwargs):
        raise InputError("disk full")

    monkeypatch.setattr(workflow.inference, "write_pictures", broken)
    before = sorted(p.name for p in paths.outputs.iterdir())
    with pytest.raises(InputError, match="disk full"):
        workflow.run_inference(paths, run_name="broken", progress=False, log=lambda _: None)
    assert sorted(p.name for p in paths.outputs.iterdir()) == before


# --------------------------------------------------------------------------- the invoke tasks


def invoke(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu"}
    env.pop("GRAPHCAST_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
def test_invoke_run_inference_and_a_bad_input(tmp_path, compile_cache):
    paths = copy_fixture(tmp_path / "data")
    ok = invoke("run-inference", "--data-dir", str(paths.root), "--run-name", "cli", "--steps", "2",
                cache=compile_cache)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "Forecast of 2 steps written to" in ok.stdout
    assert xr.open_dataset(paths.outputs / "cli" / "predictions.nc").sizes["time"] == 2
    bad = invoke(
        "run-inference", "--data-dir", str(paths.root), "--steps", "9", cache=compile_cache
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "use --steps 4" in bad.stderr
    assert sorted(p.name for p in paths.outputs.iterdir()) == ["cli"]
    bad = invoke("run-training", "--data-dir", str(paths.root), "--learning-rate", "fast",
                 cache=compile_cache)  # fmt: skip
    assert (
        bad.returncode == 1
        and bad.stderr == "--learning-rate must be a positive number, not 'fast'\n"
    )
