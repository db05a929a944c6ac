"""The tasks end to end on the official-small fixture: forecast, scores, pictures, training, demo.

Compiles are shared through a persistent compilation cache for this module (and its
subprocesses), so each distinct program compiles once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from graphcast_zero import rollout, workflow
from graphcast_zero.checkpoint import load_checkpoint, save_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths

from .conftest import FIXTURE_DATASET, OFFICIAL, REPO_ROOT

DATASET_NAME = FIXTURE_DATASET.name
PARAMS_NAME = "random_small.npz"


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """One on-disk compilation cache for this module and the invoke subprocesses it starts."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    folder = tmp_path_factory.mktemp("jax-cache")
    saved = {
        name: getattr(jax.config, name)
        for name in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield folder
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def copy_fixture(folder: Path) -> DataPaths:
    """A data folder with the fixture's params/, stats/ and dataset/ (no outputs)."""
    for part in ("params", "stats", "dataset"):
        shutil.copytree(OFFICIAL / part, folder / part)
    return DataPaths(folder)


@pytest.fixture(scope="module")
def forecast(tmp_path_factory, compile_cache):
    """One forecast through the workflow, with what rollout.predict returned to it."""
    paths = copy_fixture(tmp_path_factory.mktemp("data"))
    returned = {}
    original = rollout.predict

    def spy(*args, **kwargs):
        returned.update(original(*args, **kwargs))
        return returned

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollout, "predict", spy)
        result = workflow.run_inference(paths, run_name="first", progress=False, log=lambda _: None)
    return paths, result, returned


def inputs_and_targets(steps: int = 4):
    dataset = xr.load_dataset(FIXTURE_DATASET)
    frames = dataset.isel(time=slice(0, 2 + steps))
    return frames.isel(time=slice(0, 2)), frames.isel(time=slice(2, None))


def band_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Area of each latitude band of an evenly spaced grid with both poles, by hand."""
    half = np.deg2rad(np.diff(lat_deg)[0] / 2)
    lat = np.deg2rad(lat_deg)
    upper, lower = np.minimum(lat + half, np.pi / 2), np.maximum(lat - half, -np.pi / 2)
    area = np.sin(upper) - np.sin(lower)
    return area / area.mean()


def assert_picture(path: Path, frames: int = 1) -> None:
    assert path.stat().st_size > 5_000, path
    with Image.open(path) as image:
        assert getattr(image, "n_frames", 1) == frames
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 10 and min(image.size) > 200, path


# ------------------------------------------------------------------------------------ forecast


def test_forecast_writes_every_file(forecast):
    paths, result, _ = forecast
    assert result.run_dir == paths.outputs / "first"
    names = sorted(p.name for p in result.run_dir.iterdir())
    assert names == sorted(
        ["predictions.nc", "metrics.json", "metrics.csv", "run.json",
         "map_2m_temperature_24h.png", "2m_temperature.gif", "rmse_vs_lead_time.png"]
    )  # fmt: skip
    assert sorted(p.name for p in paths.outputs.iterdir()) == ["first"]  # no staging left


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


def test_predictions_match_the_official_bfloat16_rollout(forecast):
    _, result, _ = forecast
    written = xr.load_dataset(result.predictions_path)
    reference = xr.load_dataset(OFFICIAL / "reference" / "predictions.nc")
    for name in reference.data_vars:
        ours = written[name].transpose(*reference[name].dims).values
        sigma = reference[name].values.std()
        assert np.abs(ours - reference[name].values).max() <= 0.15 * sigma, name


def test_metrics_recomputed_by_hand(forecast):
    _, result, _ = forecast
    predictions = xr.load_dataset(result.predictions_path)
    inputs, targets = inputs_and_targets()
    weights = band_weights(targets.lat.values)[:, None]  # [lat, 1]
    rows = json.loads((result.run_dir / "metrics.json").read_text())["rows"]
    by_key = {(r["variable"], r["level"], r["lead_time_hours"]): r for r in rows}
    for step in range(4):
        truth = targets["2m_temperature"].values[0, step]  # [lat, lon]
        error = predictions["2m_temperature"].values[0, step] - truth
        persistence = inputs["2m_temperature"].values[0, -1] - truth
        row = by_key[("2m_temperature", None, 6 * (step + 1))]
        assert row["rmse"] == pytest.approx(np.sqrt((weights * error**2).mean()), rel=1e-5)
        assert row["bias"] == pytest.approx((weights * error).mean(), rel=1e-4, abs=1e-6)
        assert row["persistence_rmse"] == pytest.approx(
            np.sqrt((weights * persistence**2).mean()), rel=1e-5
        )
    z500 = (
        predictions["geopotential"].sel(level=500).values[0, 3]
        - targets["geopotential"].sel(level=500).values[0, 3]
    )
    assert by_key[("geopotential", 500, 24)]["rmse"] == pytest.approx(
        np.sqrt((weights * z500**2).mean()), rel=1e-5
    )
    csv_lines = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) == 1 + 4 * (5 + 6 * 13)


def test_pictures_are_real_images(forecast):
    _, result, _ = forecast
    assert_picture(result.run_dir / "map_2m_temperature_24h.png")
    assert_picture(result.run_dir / "2m_temperature.gif", frames=4)
    assert_picture(result.run_dir / "rmse_vs_lead_time.png")


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


# ---------------------------------------------------------------------------- evaluate, plot


def test_evaluate_prints_the_table_and_rewrites_metrics(forecast):
    paths, result, _ = forecast
    lines = []
    workflow.run_evaluate(
        paths, run="first", variable="temperature", level=850, lead_time="12h", log=lines.append
    )
    table = lines[0].splitlines()
    assert table[0].split()[:4] == ["variable", "level", "lead", "(h)"]
    assert len(table) == 3 and table[2].split()[:3] == ["temperature", "850", "12"]
    written = json.loads((result.run_dir / "metrics.json").read_text())["rows"]
    row = next(
        r
        for r in written
        if (r["variable"], r["level"], r["lead_time_hours"]) == ("temperature", 850, 12)
    )
    assert f"{row['rmse']:.4g}" == table[2].split()[3]


def test_evaluate_a_predictions_file_with_another_dataset(forecast, tmp_path):
    paths, result, _ = forecast
    copy = tmp_path / "p.nc"
    shutil.copy(result.predictions_path, copy)
    with pytest.raises(InputError, match="pass --dataset"):
        workflow.run_evaluate(paths, predictions=copy, log=lambda _: None)
    scored = workflow.run_evaluate(
        paths, predictions=copy, dataset=paths.dataset / DATASET_NAME, log=lambda _: None
    )
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "rmse_vs_lead_time.png").is_file()
    assert float(scored.metrics.rmse["2m_temperature"][0]) == pytest.approx(
        float(result.metrics.rmse["2m_temperature"][0])
    )


def test_plot_a_level_and_lead_time(forecast):
    paths, result, _ = forecast
    pictures = workflow.run_plot(
        paths, variable="geopotential", level=500, lead_time="12", log=lambda _: None
    )
    assert [p.name for p in pictures] == [
        "map_geopotential_500hPa_12h.png", "geopotential_500hPa.gif", "rmse_vs_lead_time.png",
    ]  # fmt: skip
    assert_picture(pictures[0])
    assert_picture(pictures[1], frames=4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lead_time": "7h"}, "--lead-time '7h' is not a predicted lead time: choose one of 6h"),
        ({"variable": "temperature", "level": 123}, "no level 123 hPa for temperature"),
        ({"variable": "2m_temperature", "level": 500}, "surface variable: drop --level"),
        ({"variable": "snow"}, "no 'snow' in the predictions"),
        ({"run": "nope"}, "no run folder"),
    ],
)
def test_plot_options_are_checked(forecast, options, message):
    paths, _, _ = forecast
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        workflow.run_plot(paths, **options, log=lambda _: None)


# -------------------------------------------------------------------------------- bad inputs


def _replace_dataset(paths: DataPaths, change) -> Path:
    path = paths.dataset / DATASET_NAME
    changed = change(xr.load_dataset(path))
    path.unlink()
    changed.to_netcdf(path)
    return path


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
        lambda p: _replace_dataset(p, lambda d: d.drop_vars("vertical_velocity")),
        {},
        "lacks vertical_velocity",
    ),
    "NaNs": (lambda p: _replace_dataset(p, _nan_input), {}, "2m_temperature has 1 NaN/inf"),
    "truncated NetCDF": (lambda p: _truncate(p.dataset / DATASET_NAME), {}, "cannot be read"),
    "truncated checkpoint": (
        lambda p: _truncate(p.params / PARAMS_NAME),
        {},
        "checkpoint is truncated or corrupt",
    ),
    "too few time steps": (lambda p: None, {"steps": 5}, "use --steps 4"),
    "unknown precision": (lambda p: None, {"precision": "half"}, "auto, bfloat16, float32"),
    "negative grid chunks": (lambda p: None, {"grid_chunks": -1}, "--chunks must be 0"),
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


# ------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def trained(tmp_path_factory, compile_cache):
    """Four iterations on one 3-frame window, so every iteration sees the same batch."""
    paths = copy_fixture(tmp_path_factory.mktemp("train"))
    _replace_dataset(paths, lambda d: d.isel(time=slice(0, 3)))
    output = paths.outputs / "t" / "params.npz"
    result = workflow.run_training(paths, iterations=4, output=output, progress=False,
                                   log=lambda _: None)  # fmt: skip
    return paths, result


def test_training_lowers_the_loss(trained):
    _, result = trained
    assert result.iterations_done == 4 and result.num_devices == 1 and result.batch_size == 1
    losses = np.asarray(result.losses)
    assert np.all(np.diff(losses) < 0), losses
    assert losses[-1] < 0.9 * losses[0]


def test_trained_checkpoint_loads_and_forecasts(trained, forecast):
    paths, result = trained
    start = load_checkpoint(OFFICIAL / "params" / PARAMS_NAME)
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint.model_config == start.model_config
    assert checkpoint.task_config == start.task_config
    assert "4 iterations" in checkpoint.description
    moved = [
        not np.allclose(checkpoint.params[m][n], start.params[m][n])
        for m in start.params
        for n in start.params[m]
    ]
    assert np.mean(moved) > 0.9
    shutil.copy(FIXTURE_DATASET, paths.dataset / DATASET_NAME)  # back to 4 steps
    run = workflow.run_inference(paths, params=result.checkpoint_path, run_name="after",
                                 progress=False, log=lambda _: None)  # fmt: skip
    assert run.timings["graphs_from_cache"]  # training on this grid saved them
    untrained = forecast[1].predictions["2m_temperature"].values
    assert not np.allclose(run.predictions["2m_temperature"].values, untrained)
    info = json.loads((result.checkpoint_path.parent / "training.json").read_text())
    assert info["losses"] == result.losses and info["iterations"] == 4
    # The first plan of the ladder (whole grid, nothing recomputed) was compiled and fitted.
    plan = info["memory"]
    assert plan["how_chosen"] == "fits" and plan["grid_chunks"] == 1
    assert (
        not plan["remat_processor"] and 0 < plan["estimated_device_bytes"] <= plan["budget_bytes"]
    )
    assert_picture(result.checkpoint_path.parent / "loss.png")


def test_resume_continues_with_the_optimizer_state(trained):
    paths, first = trained
    _replace_dataset(paths, lambda d: d.isel(time=slice(0, 3)))
    again = workflow.run_training(paths, iterations=2, resume=True, progress=False,
                                  log=lambda _: None)  # fmt: skip
    assert again.checkpoint_path == first.checkpoint_path
    assert again.iterations_done == 6
    assert again.losses[0] < first.losses[-1] and again.losses[1] < again.losses[0]
    info = json.loads((first.checkpoint_path.parent / "training.json").read_text())
    assert info["losses"] == first.losses + again.losses
    with pytest.raises(InputError, match="drop --params/--random"):
        workflow.run_training(paths, random=True, resume=True, log=lambda _: None)


DATA_PARALLEL = """
import json, sys
import jax, numpy as np
from pathlib import Path
from graphcast_zero import trainer, training, workflow
from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.paths import DataPaths
from graphcast_zero.predictor import build_predictor

paths = DataPaths(Path(sys.argv[1]))
result = workflow.run_training(paths, iterations=1, batch_size=2, precision="float32",
                               output=paths.outputs / "dp" / "params.npz", progress=False)
setup = workflow.load_setup(paths, steps=1)
predictor = build_predictor(setup.checkpoint.model_config, setup.checkpoint.task_config,
                            setup.statistics, setup.dataset.lat.values, setup.dataset.lon.values,
                            precision="float32")
windows = trainer.time_windows(setup.dataset, predictor, 1)
batch = trainer.batch_of(windows, 0, 2)
placed = trainer.Placement.over_all_devices().batched(batch.inputs)
one = jax.devices()[0]
on_one = lambda tree: jax.device_put(tree, one)
loss, _ = jax.jit(lambda p, c, i, t, f: training.loss_and_diagnostics(predictor, p, c, i, t, f))(
    on_one(setup.checkpoint.params), on_one(predictor.constants()), on_one(batch.inputs),
    on_one(batch.targets), on_one(batch.forcings))
print(json.dumps({"devices": result.num_devices, "loss": result.losses[0],
                  "single_device_loss": float(loss),
                  "shards": len(placed["2m_temperature"].addressable_shards),
                  "shard_batch": placed["2m_temperature"].addressable_shards[0].data.shape[0]}))
"""


def test_data_parallel_training_on_two_cpu_devices(tmp_path, compile_cache):
    paths = copy_fixture(tmp_path / "data")
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(compile_cache),
    }
    script = textwrap.dedent(DATA_PARALLEL)
    done = subprocess.run([sys.executable, "-c", script, str(paths.root)], capture_output=True,
                          text=True, timeout=900, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2 and report["shards"] == 2 and report["shard_batch"] == 1
    assert report["loss"] == pytest.approx(report["single_device_loss"], rel=1e-5)
    assert load_checkpoint(paths.outputs / "dp" / "params.npz").model_config.mesh_size == 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"remat": "sometimes"}, "--remat must be one of auto, off, steps, processor, all"),
        ({"grid_chunks": -2}, "--chunks must be 0 (choose) or more, not -2"),
    ],
)
def test_memory_options_are_checked_before_training(tmp_path, options, message):
    paths = copy_fixture(tmp_path / "data")
    with pytest.raises(InputError, match=re.escape(message)):
        workflow.run_training(paths, iterations=1, progress=False, log=lambda _: None, **options)


def test_batch_size_must_split_over_the_devices(tmp_path):
    from graphcast_zero import trainer

    with pytest.raises(InputError, match="multiple of the 2 devices"):
        trainer.check_batch_size(3, 2)


# ---------------------------------------------------------------------------------------- demo


def test_demo_runs_the_whole_path_offline(tmp_path, compile_cache):
    lines = []
    report = workflow.run_demo(DataPaths(tmp_path / "demo"), iterations=2, log=lines.append)
    forecast = report["inference"]
    assert forecast.predictions.sizes["time"] == 8
    assert_picture(forecast.run_dir / "map_2m_temperature_48h.png")
    assert_picture(forecast.run_dir / "2m_temperature.gif", frames=8)
    assert len(report["training"].losses) == 2
    assert load_checkpoint(report["training"].checkpoint_path).model_config.mesh_size == 3
    assert "Demo finished" in lines[-1] and str(forecast.run_dir) in lines[-1]
