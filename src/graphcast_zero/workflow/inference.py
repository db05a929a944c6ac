"""The forecast task: load and check the inputs, roll the model out, write a complete run folder."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero import catalog, data, evaluation, validation
from graphcast_zero.errors import InputError
from graphcast_zero.model.graphcast import input_frames
from graphcast_zero.paths import DataPaths
from graphcast_zero.workflow.files import (
    PREDICTIONS,
    RUN_INFO,
    Log,
    PathLike,
    Setup,
    default_run_name,
    environment_info,
    forecast_window,
    load_setup,
    precision_option,
    staged_folder,
    use_compilation_cache,
    write_json,
    write_netcdf,
)
from graphcast_zero.workflow.scoring import write_pictures


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """Where a forecast went and what it scored."""

    run_dir: Path
    predictions_path: Path
    predictions: xr.Dataset
    metrics: evaluation.Evaluation
    timings: dict
    files: list[Path]


class _StepTimer:
    """Progress bar and timings over rollout chunks."""

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
) -> InferenceResult:
    """Forecasts from the start of a dataset and writes predictions, metrics, pictures, run.json.

    Args:
      paths: the data folder.
      params, dataset, stats_dir: inputs (defaults: the newest fitting files in the data folder).
      steps: 6-hour steps to forecast (None or 0: every target in the dataset).
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

    Raises:
      InputError: for inputs that do not fit each other or an unwritable output folder.
    """
    precision = precision_option(precision)
    started = time.perf_counter()
    setup = load_setup(paths, params, dataset, stats_dir, steps)
    final, predictions_name = _output_place(paths, output, run_name, setup.params_path)
    validation.check_writable_folder(final.parent)
    load_s = time.perf_counter() - started
    use_compilation_cache(paths.cache / "jax")
    if grid_chunks < 0:
        raise InputError(f"--chunks must be 0 (choose) or more, not {grid_chunks}")
    predictions, targets, inputs, timings, plan = _forecast(
        setup, precision, chunk_steps, grid_chunks or None, progress, paths.cache / "graphs"
    )
    timings = {"load_and_check_s": load_s, **timings}
    metrics = evaluation.evaluate(predictions, targets, last_inputs=inputs)
    with staged_folder(final) as stage:
        write_netcdf(predictions, stage / predictions_name)
        evaluation.write_metrics_json(metrics, stage / "metrics.json")
        evaluation.write_metrics_csv(metrics, stage / "metrics.csv")
        pictures = write_pictures(stage, predictions, targets, setup.dataset, metrics)
        timings["total_s"] = time.perf_counter() - started
        info = {**_run_info(setup, precision, predictions_name, timings), "memory": plan}
        write_json(info, stage / RUN_INFO)
        names = [
            predictions_name,
            "metrics.json",
            "metrics.csv",
            RUN_INFO,
            *(p.name for p in pictures),
        ]
    files = [final / name for name in names]
    log(f"Forecast of {setup.steps} steps written to {final}:")
    log("\n".join(f"  {path.name}" for path in files))
    return InferenceResult(final, final / predictions_name, predictions, metrics, timings, files)


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
    from graphcast_zero.graph_cache import load_or_build_graphs
    from graphcast_zero.predictor import build_predictor

    task = setup.checkpoint.task_config
    inputs, targets, forcings = forecast_window(setup.dataset, task, setup.steps)
    lat, lon = setup.dataset["lat"].values, setup.dataset["lon"].values
    started = time.perf_counter()
    model_config = setup.checkpoint.model_config
    graphs, graphs_cached = load_or_build_graphs(graphs_folder, model_config, lat, lon)
    predictor = build_predictor(
        model_config, task, setup.statistics, lat, lon, precision=precision, graphs=graphs
    )
    graph_s = time.perf_counter() - started
    params = jax.tree.map(jax.numpy.asarray, setup.checkpoint.params)
    input_arrays, forcing_arrays = data.dataset_to_arrays(inputs), data.dataset_to_arrays(forcings)
    started = time.perf_counter()
    choice = rollout.choose_memory_plan(
        predictor, params, input_arrays, forcing_arrays, chunk_steps, grid_chunks
    )
    predictor = dataclasses.replace(predictor, memory=choice.plan)
    plan_s = time.perf_counter() - started
    timer = _StepTimer(setup.steps, progress)
    arrays = rollout.predict(
        predictor, params, input_arrays, forcing_arrays, chunk_steps=chunk_steps, on_step=timer
    )
    reference = setup.dataset["datetime"].isel(time=input_frames(task) - 1).values  # [batch]
    predictions = data.arrays_to_dataset(
        arrays,
        lat=lat,
        lon=lon,
        levels=task.pressure_levels,
        lead_times=targets["time"].values,
        reference_datetimes=np.atleast_1d(reference),
    )
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
        "precision": precision,
        "model_config": dataclasses.asdict(setup.checkpoint.model_config),
        "task_config": dataclasses.asdict(setup.checkpoint.task_config),
        **environment_info(),
        "timings": timings,
    }
