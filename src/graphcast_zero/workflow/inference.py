"""The forecast task: load and check the inputs, roll the model out, write a complete run folder."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero import catalog, evaluation, regions, validation
from graphcast_zero.atomic import write_json, write_netcdf
from graphcast_zero.config import STEP
from graphcast_zero.errors import InputError
from graphcast_zero.memory import MemoryOptions
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.workflow.compile_cache import use_compilation_cache
from graphcast_zero.workflow.inputs import Setup, load_setup
from graphcast_zero.workflow.options import Log, precision_option
from graphcast_zero.workflow.run_folder import (
    PREDICTIONS,
    RUN_INFO,
    default_run_name,
    staged_folder,
)
from graphcast_zero.workflow.run_info import environment_info
from graphcast_zero.workflow.scoring import MAP_VARIABLE, lead_times, map_choices, write_pictures


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """Where a forecast went and what it scored."""

    run_dir: Path
    predictions_path: Path
    predictions: xr.Dataset
    metrics: Optional[evaluation.Evaluation]  # None when the dataset holds no targets
    timings: dict
    files: list[Path]


class _StepTimer:
    """Progress bar and timings over rollout steps, as their predictions reach the host."""

    def __init__(self, total: int, progress: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="step", desc="forecast", disable=not progress)
        self.start = time.perf_counter()
        self.marks: list[tuple[int, float]] = []

    def __call__(self, done: int, total: int) -> None:
        self.marks.append((done, time.perf_counter() - self.start))
        self.bar.update(done - self.bar.n)

    def timings(self) -> dict:
        self.bar.close()
        first_done, first = self.marks[0]
        total_done, total = self.marks[-1]
        rest = total_done - first_done
        per_step = (total - first) / rest if rest else None
        return {"compile_and_first_chunk_s": first, "per_step_s": per_step, "rollout_s": total}


def run_inference(
    paths: DataPaths,
    *,
    params: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: Optional[int] = None,
    output: Optional[PathLike] = None,
    precision: str = "auto",
    run_name: Optional[str] = None,
    chunk_steps: Optional[int] = None,
    grid_chunks: int = 0,
    progress: bool = True,
    log: Log = print,
    maps: Optional[MapOptions] = None,
) -> InferenceResult:
    """Forecasts from the start of a dataset and writes predictions, metrics, pictures, run.json.

    Args:
      paths: the data folder.
      params, dataset, stats_dir: inputs (defaults: the newest fitting files in the data folder).
      steps: 6-hour steps to forecast (None or 0: every frame of the dataset). Steps past the
        dataset's targets (a forecast-only dataset) are forecast and drawn but not scored.
      output: predictions file to write; the other files go beside it. Default:
        ``<data>/outputs/<run>/predictions.nc``.
      precision: ``auto`` (bfloat16 on accelerators as published, float32 on CPUs),
        ``bfloat16`` or ``float32``.
      run_name: the run folder's name (default: timestamp and model name).
      chunk_steps: steps per compiled call (default: all of them; each step's predictions
        leave the device, and update the progress bar, as soon as they are made).
      grid_chunks: chunks of grid nodes for the encoder and decoder (0: the fewest that fit
        the device's memory, see ``memory``); the choice goes into run.json.
      progress: show a progress bar over steps.
      log: where to print messages.
      maps: which variables and lead times to draw, and the region to zoom into (default: 2 m
        temperature at the last lead time, the whole globe).

    Raises:
      InputError: for inputs that do not fit each other, map options that do not fit the
        forecast, or an unwritable output folder.
    """
    precision = precision_option(precision)
    maps = maps or MapOptions()
    started = time.perf_counter()
    setup = load_setup(paths, params, dataset, stats_dir, steps)
    # Open lazily for the forecast, and closed after it: an open file would pin a replaced one.
    with setup.dataset:
        _check_maps(maps, setup)
        MemoryOptions(grid_chunks=grid_chunks).check()
        final, predictions_name = _output_place(paths, output, run_name, setup.params_path)
        validation.check_writable_folder(final.parent)
        load_s = time.perf_counter() - started
        use_compilation_cache(paths.cache / "jax")
        predictions, targets, inputs, timings, plan = _forecast(
            setup, precision, chunk_steps, grid_chunks or None, progress, paths.cache / "graphs"
        )
        timings = {"load_and_check_s": load_s, **timings}
        # Forecast-only datasets: only the lead times with targets are scored.
        scored = slice(0, setup.target_steps)
        metrics = None
        if setup.target_steps:
            metrics = evaluation.evaluate(
                predictions.isel(time=scored), targets.isel(time=scored), last_inputs=inputs
            )
        with staged_folder(final) as stage:
            write_netcdf(predictions, stage / predictions_name)
            names = [predictions_name]
            if metrics is not None:
                evaluation.write_metrics_json(metrics, stage / "metrics.json")
                evaluation.write_metrics_csv(metrics, stage / "metrics.csv")
                names += ["metrics.json", "metrics.csv"]
            pictures = write_pictures(
                stage, predictions, targets.isel(time=scored), setup.dataset, metrics,
                maps.variable, maps.level, maps.lead_time, maps.region,
            )  # fmt: skip
            timings["total_s"] = time.perf_counter() - started
            info = {**_run_info(setup, precision, predictions_name, timings), "memory": plan}
            write_json(info, stage / RUN_INFO)
            names += [RUN_INFO, *(p.name for p in pictures)]
        files = [final / name for name in names]
        log(f"Forecast of {setup.steps} steps written to {final}:")
        if setup.target_steps < setup.steps:
            log(
                f"  ({setup.target_steps} of {setup.steps} steps have targets: only those are scored)"
            )
        log("\n".join(f"  {path.name}" for path in files))
        return InferenceResult(
            final, final / predictions_name, predictions, metrics, timings, files
        )


@dataclasses.dataclass(frozen=True)
class MapOptions:
    """The pictures of a forecast (see :func:`graphcast_zero.workflow.scoring.write_pictures`).

    Attributes:
      variable: a variable, or a comma-separated list (``2m_temperature,geopotential:500``).
      level: the level of atmospheric variables given without one (default 500 hPa).
      lead_time: a lead time or a comma-separated list (``24h,120h``; default the last).
      region: ``lat0,lat1,lon0,lon1`` to zoom into (default the whole globe).
    """

    variable: str = MAP_VARIABLE
    level: Optional[int] = None
    lead_time: Optional[str] = None
    region: Optional[str] = None


def _check_maps(maps: MapOptions, setup: Setup) -> None:
    """The map options fit the forecast, checked before anything compiles."""
    task = setup.checkpoint.task_config
    regions.parse_region(maps.region)
    map_choices(maps.variable, maps.level, task.target_variables, task.pressure_levels)
    lead_times(maps.lead_time, np.arange(1, setup.steps + 1) * STEP.to_timedelta64())


def _output_place(
    paths: DataPaths, output: Optional[PathLike], run_name: Optional[str], params_path: Path
) -> tuple[Path, str]:
    """(run folder, predictions file name)."""
    if output:
        output = Path(output).expanduser().absolute()
        if output.suffix != ".nc":
            raise InputError(f"--output {output} must be a .nc file (the predictions)")
        return output.parent, output.name
    name = run_name or default_run_name(params_path.name)
    if not catalog.is_safe_file_name(name) or name.startswith("."):
        raise InputError(f"--run-name {name!r} must be a plain folder name")
    final = paths.outputs / name
    if final.exists():
        raise InputError(f"run folder {final} exists: choose another --run-name")
    return final, PREDICTIONS


def _forecast(
    setup: Setup,
    precision: str,
    chunk_steps: Optional[int],
    grid_chunks: Optional[int],
    progress: bool,
    graphs_folder: Path,
):
    """Builds the predictor, chooses its memory plan and runs the rollout; returns datasets,
    timings and the plan (as run.json records it)."""
    import jax

    from graphcast_zero import rollout
    from graphcast_zero.forecast import forecast_dataset, forecast_window
    from graphcast_zero.graph_cache import assemble_predictor

    task = setup.checkpoint.task_config
    lat, lon = setup.dataset["lat"].values, setup.dataset["lon"].values
    started = time.perf_counter()
    predictor, graphs_cached = assemble_predictor(
        setup.checkpoint.model_config, task, setup.statistics, lat, lon,
        precision=precision, graphs_folder=graphs_folder,
    )  # fmt: skip
    graph_s = time.perf_counter() - started
    params = jax.tree.map(jax.numpy.asarray, setup.checkpoint.params)
    window = forecast_window(setup.dataset, task, setup.steps)
    started = time.perf_counter()
    choice, program = rollout.choose_memory_plan(
        predictor, params, window.input_arrays, window.forcing_arrays, chunk_steps, grid_chunks
    )
    predictor = dataclasses.replace(predictor, memory=choice.plan)
    plan_s = time.perf_counter() - started
    timer = _StepTimer(setup.steps, progress)
    predictions, targets, inputs = forecast_dataset(
        predictor, params, setup.dataset, setup.steps,
        window=window, chunk_steps=chunk_steps, on_step=timer, program=program,
    )  # fmt: skip
    timings = {
        "graph_build_s": graph_s,
        "graphs_from_cache": graphs_cached,
        "memory_plan_s": plan_s,
        **timer.timings(),
    }
    return predictions, targets, inputs, timings, choice.as_json()


def _run_info(setup: Setup, precision: str, predictions_name: str, timings: dict) -> dict:
    return {
        "format": "graphcast-zero-run/1",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "inputs": {
            "params": str(setup.params_path.absolute()),
            "dataset": str(setup.dataset_path.absolute()),
            "stats_dir": str(setup.stats_dir.absolute()),
        },
        "predictions": predictions_name,
        "steps": setup.steps,
        "scored_steps": setup.target_steps,
        "precision": precision,
        "model_config": dataclasses.asdict(setup.checkpoint.model_config),
        "task_config": dataclasses.asdict(setup.checkpoint.task_config),
        **environment_info(),
        "timings": timings,
    }
