"""The forecast workflow behind the invoke tasks: pick files, check them, forecast, score, draw.

Each ``run_*`` function is what one task does. They choose defaults from the data folder, check
that the checkpoint, statistics and dataset fit each other before anything compiles
(:mod:`graphcast_zero.validation`), and write results into ``<data>/outputs/<run>/``. A run
folder is built under a hidden temporary name and renamed when complete, so a failed run leaves
nothing half-written. The training loop itself lives in :mod:`graphcast_zero.trainer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import catalog, data, evaluation, validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.config import ATMOSPHERIC_VARIABLES, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.model.graphcast import input_frames
from graphcast_zero.paths import DataPaths
from graphcast_zero.statistics import Statistics, load_statistics

PathLike = Union[str, os.PathLike]
Log = Callable[[str], None]
PREDICTIONS = "predictions.nc"
RUN_INFO = "run.json"
MAP_VARIABLE = "2m_temperature"
CHART_LEVEL = 500
PACKAGES = ("jax", "jaxlib", "dm-haiku", "optax", "xarray", "numpy", "graphcast-zero")


# ------------------------------------------------------------------------------- choosing files


def newest_file(folder: Path, pattern: str, what: str, fix: str) -> Path:
    """The most recently modified file matching ``pattern`` (hidden files skipped)."""
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise InputError(f"no {what} in {folder}: {fix}")
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


def choose_params(paths: DataPaths, params: Optional[PathLike]) -> Path:
    """``--params``, else the newest checkpoint in ``<data>/params``."""
    if params:
        return Path(params)
    return newest_file(paths.params, "*.npz", "checkpoint (.npz)", "run `invoke fetch-data`")


def choose_dataset(paths: DataPaths, dataset: Optional[PathLike], ckpt: Checkpoint) -> Path:
    """``--dataset``, else the newest dataset in ``<data>/dataset`` whose name fits the model.

    Files whose names do not follow the bucket's pattern are considered too, after those that fit.
    """
    if dataset:
        return Path(dataset)
    files = sorted(
        (p for p in paths.dataset.glob("*.nc") if not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    model = catalog.PublishedModel("checkpoint", "", ckpt.model_config, ckpt.task_config)
    fits, unknown, misfits = [], [], []
    for path in files:
        parsed = catalog.parse_dataset_name(path.name)
        if parsed is None:
            unknown.append(path)
        elif (why := catalog.dataset_misfit(model, parsed)) is None:
            fits.append(path)
        else:
            misfits.append(f"{path.name} has {why}")
    if fits or unknown:
        return (fits + unknown)[0]
    found = f" ({misfits[0]})" if misfits else ""
    raise InputError(
        f"no dataset in {paths.dataset} fits the checkpoint{found}: fetch one "
        f"{validation.LIST_HINT} or pass --dataset"
    )


def newest_run(paths: DataPaths, marker: str = PREDICTIONS) -> Path:
    """The newest run folder under ``<data>/outputs`` holding ``marker``."""
    runs = [
        p.parent for p in paths.outputs.glob(f"*/{marker}") if not p.parent.name.startswith(".")
    ]
    if not runs:
        raise InputError(
            f"no run with {marker} in {paths.outputs}: run `invoke run-inference` first"
        )
    return max(runs, key=lambda p: ((p / marker).stat().st_mtime, p.name))


# ------------------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Setup:
    """A checked combination of checkpoint, statistics and dataset."""

    checkpoint: Checkpoint
    params_path: Path
    statistics: Statistics
    stats_dir: Path
    dataset: xr.Dataset
    dataset_path: Path
    steps: int


def load_setup(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: Optional[int] = None,
    checkpoint: Optional[Checkpoint] = None,
) -> Setup:
    """Loads and cross-checks the three inputs; ``steps`` defaults to every target available."""
    params_path = choose_params(paths, params) if checkpoint is None else Path(params or "")
    checkpoint = checkpoint or load_checkpoint(params_path)
    dataset_path = choose_dataset(paths, dataset, checkpoint)
    frame = validation.open_dataset(dataset_path)
    if steps is None or steps == 0:
        steps = max(validation.available_steps(frame, checkpoint.task_config), 1)
    name = dataset_path.name
    validation.check_dataset(frame, name, checkpoint.model_config, checkpoint.task_config, steps)
    stats_dir = Path(stats_dir) if stats_dir else paths.stats
    statistics = load_statistics(stats_dir)
    validation.check_statistics(statistics, checkpoint.task_config, stats_dir)
    return Setup(checkpoint, params_path, statistics, stats_dir, frame, dataset_path, steps)


def forecast_window(dataset: xr.Dataset, task_config: TaskConfig, steps: int):
    """(inputs, targets, forcings) for a forecast from the start of the dataset."""
    window = dataset.isel(time=slice(0, input_frames(task_config) + steps))
    return data.extract_inputs_targets_forcings(window, task_config, slice("6h", f"{6 * steps}h"))


def use_compilation_cache(folder: Path) -> None:
    """Keeps compiled programs on disk, so a second run skips most of the compile time.

    Left alone when the user configured a cache (``JAX_COMPILATION_CACHE_DIR``).
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))


# ---------------------------------------------------------------------------------- run folders


def default_run_name(label: str) -> str:
    """``20260301-120000-GraphCast_small``: a timestamp and the model's short name."""
    short = label.split(" - ")[0].removesuffix(".npz").replace(" ", "_")
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{short}"


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yields a hidden folder beside ``final``; on success its files land in ``final``.

    A new ``final`` is a single rename; into an existing folder each file is renamed in. On any
    error the staging folder is removed, so nothing half-written is left.
    """
    validation.check_writable_folder(final.parent)
    stage = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        if final.exists():
            for item in stage.iterdir():
                os.replace(item, final / item.name)
            stage.rmdir()
        else:
            os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_netcdf(dataset: xr.Dataset, path: Path) -> Path:
    """Writes NetCDF through a temporary name and a rename."""
    with evaluation.atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return path


def write_json(payload: dict, path: Path) -> Path:
    with evaluation.atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def environment_info() -> dict:
    """Package versions and the devices JAX sees, for ``run.json``."""
    import jax

    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    devices = jax.devices()
    return {
        "versions": versions,
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
    }


# ------------------------------------------------------------------------------------ inference


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
    precision: str = "bfloat16",
    run_name: Optional[str] = None,
    chunk_steps: Optional[int] = None,
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
      precision: ``bfloat16`` (as published) or ``float32``.
      run_name: the run folder's name (default: timestamp and model name).
      chunk_steps: steps per compiled call (default 1, as the official demo: each step
        updates the progress bar and leaves the device).
      progress: show a progress bar over steps.
      log: where to print messages.

    Raises:
      InputError: for inputs that do not fit each other or an unwritable output folder.
    """
    from graphcast_zero.predictor import PRECISIONS

    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    started = time.perf_counter()
    setup = load_setup(paths, params, dataset, stats_dir, steps)
    final, predictions_name = _output_place(paths, output, run_name, setup.params_path)
    validation.check_writable_folder(final.parent)
    load_s = time.perf_counter() - started
    use_compilation_cache(paths.root / "cache" / "jax")
    predictions, targets, inputs, timings = _forecast(setup, precision, chunk_steps, progress)
    timings = {"load_and_check_s": load_s, **timings}
    metrics = evaluation.evaluate(predictions, targets, last_inputs=inputs)
    with staged_folder(final) as stage:
        write_netcdf(predictions, stage / predictions_name)
        evaluation.write_metrics_json(metrics, stage / "metrics.json")
        evaluation.write_metrics_csv(metrics, stage / "metrics.csv")
        pictures = write_pictures(stage, predictions, targets, setup.dataset, metrics)
        timings["total_s"] = time.perf_counter() - started
        info = _run_info(setup, precision, predictions_name, timings)
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


def _forecast(setup: Setup, precision: str, chunk_steps: Optional[int], progress: bool):
    """Builds the predictor and runs the rollout; returns datasets and timings."""
    import jax

    from graphcast_zero import rollout
    from graphcast_zero.predictor import build_predictor

    task = setup.checkpoint.task_config
    inputs, targets, forcings = forecast_window(setup.dataset, task, setup.steps)
    lat, lon = setup.dataset["lat"].values, setup.dataset["lon"].values
    started = time.perf_counter()
    predictor = build_predictor(
        setup.checkpoint.model_config, task, setup.statistics, lat, lon, precision=precision
    )
    graph_s = time.perf_counter() - started
    params = jax.tree.map(jax.numpy.asarray, setup.checkpoint.params)
    timer = _StepTimer(setup.steps, progress)
    arrays = rollout.predict(
        predictor,
        params,
        data.dataset_to_arrays(inputs),
        data.dataset_to_arrays(forcings),
        chunk_steps=chunk_steps or 1,
        on_chunk=timer,
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
    return predictions, targets, inputs, {"graph_build_s": graph_s, **timer.timings()}


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


# ------------------------------------------------------------------------------------- pictures


def default_level(variable: str, levels, level: Optional[int]) -> Optional[int]:
    """The level to draw: none for surface variables, else ``level`` or 500 hPa (or the first)."""
    levels = [int(v) for v in levels]
    if variable not in ATMOSPHERIC_VARIABLES:
        if level is not None:
            raise InputError(f"{variable} is a surface variable: drop --level")
        return None
    if level is None:
        return CHART_LEVEL if CHART_LEVEL in levels else levels[0]
    if int(level) not in levels:
        raise InputError(f"no level {level} hPa for {variable}: choose one of {levels}")
    return int(level)


def _as_level(level) -> Optional[int]:
    """``--level`` as an integer number of hPa (invoke passes text)."""
    if level is None or level == "":
        return None
    try:
        return int(level)
    except (TypeError, ValueError):
        raise InputError(
            f"--level must be a pressure level in hPa, e.g. 500, not {level!r}"
        ) from None


def parse_lead_time(text, available) -> np.timedelta64:
    """``24h``, ``1d`` or a bare number of hours, checked against the predicted lead times."""
    available = pd.to_timedelta(available)
    if text is None or text == "":
        return available[-1].to_timedelta64()
    try:
        value = (
            pd.Timedelta(hours=float(text))
            if str(text).replace(".", "").isdigit()
            else pd.Timedelta(text)
        )
    except ValueError:
        value = None
    if value is None or value not in available:
        hours = ", ".join(f"{int(t / pd.Timedelta(hours=1))}h" for t in available)
        raise InputError(
            f"--lead-time {text!r} is not a predicted lead time: choose one of {hours}"
        )
    return value.to_timedelta64()


def _field(dataset: xr.Dataset, variable: str, level: Optional[int]) -> xr.DataArray:
    field = (
        dataset[variable].isel(batch=0) if "batch" in dataset[variable].dims else dataset[variable]
    )
    return field.sel(level=level) if level is not None else field


def write_pictures(
    folder: Path,
    predictions: xr.Dataset,
    targets: xr.Dataset,
    dataset: xr.Dataset,
    metrics: evaluation.Evaluation,
    variable: str = MAP_VARIABLE,
    level: Optional[int] = None,
    lead_time=None,
) -> list[Path]:
    """A prediction/target/difference map, a GIF over lead times and an RMSE chart."""
    from graphcast_zero import plotting

    if variable not in predictions:
        raise InputError(
            f"no {variable!r} in the predictions: choose one of {list(predictions.data_vars)}"
        )
    level = default_level(variable, predictions["level"].values, level)
    lead = parse_lead_time(lead_time, predictions["time"].values)
    mask = dataset.get("land_sea_mask")
    label = variable + (f"_{level}hPa" if level is not None else "")
    hours = int(pd.Timedelta(lead) / pd.Timedelta(hours=1))
    pred, true = _field(predictions, variable, level), _field(targets, variable, level)
    title = f"{variable}" + (f" {level} hPa" if level is not None else "")
    chart_level = default_level("temperature", predictions["level"].values, None)
    return [
        plotting.plot_map(
            pred.sel(time=lead), true.sel(time=lead), folder / f"map_{label}_{hours}h.png",
            title=title, land_sea_mask=mask,
        ),
        plotting.animate(pred, folder / f"{label}.gif", field_target=true, land_sea_mask=mask, title=title),
        plotting.plot_rmse_vs_lead_time(metrics, folder / "rmse_vs_lead_time.png", level=chart_level),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- evaluate and plot


@dataclasses.dataclass(frozen=True)
class ScoredRun:
    """Predictions of a finished run, the matching targets and last inputs, and the scores."""

    folder: Path
    predictions: xr.Dataset
    targets: xr.Dataset
    dataset: xr.Dataset
    metrics: evaluation.Evaluation


def locate_predictions(
    paths: DataPaths, run: Optional[str], predictions: Optional[PathLike]
) -> Path:
    """``--predictions``, else ``predictions`` in ``--run`` (a name or folder), else the newest run."""
    if predictions:
        return Path(predictions)
    if run:
        folder = Path(run) if Path(run).is_dir() else paths.outputs / run
        if not folder.is_dir():
            raise InputError(f"no run folder {folder}: see `ls {paths.outputs}`")
        info = _read_run_info(folder)
        return folder / info.get("predictions", PREDICTIONS)
    return newest_run(paths) / PREDICTIONS


def _read_run_info(folder: Path) -> dict:
    path = folder / RUN_INFO
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{path} is not readable JSON: delete it and pass --dataset") from None


def score_run(
    paths: DataPaths,
    run: Optional[str] = None,
    predictions: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
) -> ScoredRun:
    """Loads a run's predictions and its dataset, and scores them against the targets."""
    path = locate_predictions(paths, run, predictions)
    if not path.is_file():
        raise InputError(f"predictions {path} not found: run `invoke run-inference` first")
    try:
        with xr.open_dataset(path) as handle:
            forecast = handle.load()
    except Exception as error:
        raise InputError(
            f"predictions {path} cannot be read ({type(error).__name__}): run `invoke run-inference` again"
        ) from None
    info = _read_run_info(path.parent)
    source = dataset or info.get("inputs", {}).get("dataset")
    if not source:
        raise InputError(f"{path} has no run.json naming its dataset: pass --dataset")
    frame = validation.open_dataset(source)
    forecast = forecast.drop_vars("datetime", errors="ignore")
    task = _scoring_task(forecast, frame, info)
    validation.check_time_steps(frame, task, forecast.sizes["time"], Path(source).name)
    inputs, targets, _ = forecast_window(frame, task, forecast.sizes["time"])
    metrics = evaluation.evaluate(forecast, targets, last_inputs=inputs)
    return ScoredRun(path.parent, forecast, targets, frame, metrics)


def _scoring_task(forecast: xr.Dataset, dataset: xr.Dataset, info: dict) -> TaskConfig:
    """The variables to score: the predicted ones, with their last input frame where it exists."""
    names = tuple(str(n) for n in forecast.data_vars)
    missing = [n for n in names if n not in dataset]
    if missing:
        raise InputError(
            f"the dataset lacks {', '.join(missing)} that the predictions hold: pass --dataset"
        )
    return TaskConfig(
        input_variables=names,
        target_variables=names,
        forcing_variables=(),
        pressure_levels=tuple(int(v) for v in forecast["level"].values),
        input_duration=info.get("task_config", {}).get("input_duration", "12h"),
    )


def run_evaluate(
    paths: DataPaths,
    run: Optional[str] = None,
    predictions: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    variable: Optional[str] = None,
    level: Optional[int] = None,
    lead_time=None,
    log: Log = print,
) -> ScoredRun:
    """Scores a run, prints the table (filtered by variable/level/lead time), writes metrics
    and the RMSE chart beside the predictions."""
    from graphcast_zero import plotting

    scored = score_run(paths, run, predictions, dataset)
    rows = evaluation.metrics_table(
        scored.metrics,
        variables=[variable] if variable else None,
        levels=[_as_level(level)] if level is not None else None,
    )
    if lead_time:
        lead = parse_lead_time(lead_time, scored.predictions["time"].values)
        hours = pd.Timedelta(lead) / pd.Timedelta(hours=1)
        rows = [row for row in rows if row["lead_time_hours"] == hours]
    log(evaluation.format_metrics_table(rows))
    folder = scored.folder
    validation.check_writable_folder(folder)
    evaluation.write_metrics_json(scored.metrics, folder / "metrics.json")
    evaluation.write_metrics_csv(scored.metrics, folder / "metrics.csv")
    levels = scored.predictions["level"].values
    chart_level = default_level("temperature", levels, _as_level(level))
    chart = plotting.plot_rmse_vs_lead_time(
        scored.metrics,
        folder / "rmse_vs_lead_time.png",
        [variable] if variable else None,
        chart_level,
    )
    log(f"Metrics and chart written to {folder} ({chart.name}, metrics.json, metrics.csv)")
    return scored


def run_plot(
    paths: DataPaths,
    run: Optional[str] = None,
    predictions: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    variable: Optional[str] = None,
    level: Optional[int] = None,
    lead_time=None,
    log: Log = print,
) -> list[Path]:
    """Draws maps (prediction, target, difference), a GIF and the RMSE chart for a run."""
    scored = score_run(paths, run, predictions, dataset)
    validation.check_writable_folder(scored.folder)
    pictures = write_pictures(
        scored.folder, scored.predictions, scored.targets, scored.dataset, scored.metrics,
        variable or MAP_VARIABLE, _as_level(level), lead_time,
    )  # fmt: skip
    log(f"Pictures written to {scored.folder}:\n" + "\n".join(f"  {p.name}" for p in pictures))
    return pictures


# ------------------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """Where the trained checkpoint went and how the loss went."""

    checkpoint_path: Path
    losses: list[float]
    iterations_done: int
    num_devices: int
    batch_size: int


def random_checkpoint(
    lat, lon, mesh_size: int = 4, latent_size: int = 32, gnn_msg_steps: int = 4,
    hidden_layers: int = 1, levels: int = 13, seed: int = 0,
) -> Checkpoint:  # fmt: skip
    """An untrained model like the official notebook's random one (resolution 0 fits any grid)."""
    from graphcast_zero.config import TASK_13, TASK_37, ModelConfig
    from graphcast_zero.model.graphcast import init_params

    if levels not in (13, 37):
        raise InputError(f"--levels must be 13 or 37, not {levels}")
    for option, value in (("mesh-size", mesh_size), ("latent-size", latent_size),
                          ("gnn-msg-steps", gnn_msg_steps), ("hidden-layers", hidden_layers)):  # fmt: skip
        if value < 1:
            raise InputError(f"--{option} must be at least 1, not {value}")
    model = ModelConfig(
        resolution=0.0,
        mesh_size=mesh_size,
        latent_size=latent_size,
        gnn_msg_steps=gnn_msg_steps,
        hidden_layers=hidden_layers,
        radius_query_fraction_edge_length=0.6,
    )
    task = TASK_13 if levels == 13 else TASK_37
    return Checkpoint(
        params=init_params(model, task, lat, lon, seed),
        model_config=model,
        task_config=task,
        description=f"Random, untrained GraphCast weights (seed {seed}), graphcast_zero run-training",
        license="Random weights: no licence restrictions (CC0).",
    )


def _training_output(paths: DataPaths, output: Optional[PathLike], resume: bool) -> Path:
    if output:
        output = Path(output).expanduser().absolute()
        if output.suffix != ".npz":
            raise InputError(f"--output {output} must be a .npz file (the checkpoint)")
        if resume and not output.is_file():
            raise InputError(f"--resume: no checkpoint {output} to resume from; drop --resume")
        return output
    if resume:
        return newest_run(paths, TRAINED) / TRAINED
    return paths.outputs / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-train" / TRAINED


TRAINED = "params.npz"
OPTIMIZER_STATE = "optimizer_state.npz"


def run_training(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    random: bool = False,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: int = 1,
    iterations: int = 10,
    learning_rate: Union[float, str] = 1e-3,
    output: Optional[PathLike] = None,
    resume: bool = False,
    batch_size: Optional[int] = None,
    precision: str = "bfloat16",
    random_options: Optional[dict] = None,
    progress: bool = True,
    log: Log = print,
) -> TrainingResult:
    """Trains for ``iterations`` optimiser steps and saves a checkpoint in the official format.

    Args:
      paths: the data folder.
      params: checkpoint to start from (default: the newest in ``<data>/params``).
      random: start from random weights (``random_options``: mesh_size, latent_size,
        gnn_msg_steps, hidden_layers, levels, seed).
      dataset, stats_dir: training data and statistics (defaults from the data folder).
      steps: autoregressive steps in the loss.
      iterations: optimiser steps to run.
      learning_rate: AdamW's rate.
      output: the checkpoint to write (default ``<data>/outputs/<timestamp>-train/params.npz``).
      resume: continue from ``output`` (default: the newest trained checkpoint), with its
        optimiser state.
      batch_size: windows per step (default: one per device); a multiple of the device count.
      precision: ``bfloat16`` or ``float32``.
      progress: show a progress bar with the loss.
      log: where to print messages.
    """
    import jax
    from tqdm.auto import tqdm

    from graphcast_zero import trainer, training
    from graphcast_zero.predictor import build_predictor

    if iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {iterations}")
    learning_rate = _positive_number(learning_rate, "--learning-rate")
    if params and random:
        raise InputError("--params and --random exclude each other: keep one")
    if resume and (params or random):
        raise InputError(
            "--resume continues the checkpoint named by --output: drop --params/--random"
        )
    target = _training_output(paths, output, resume)
    start = _starting_checkpoint(paths, params, random, dataset, resume, target, random_options)
    setup = load_setup(
        paths, params if not (random or resume) else target, dataset, stats_dir, steps, start
    )
    validation.check_finite(
        setup.dataset,
        start.task_config,
        validation.available_steps(setup.dataset, start.task_config),
        setup.dataset_path.name,
    )
    validation.check_writable_folder(target.parent)
    use_compilation_cache(paths.root / "cache" / "jax")
    lat, lon = setup.dataset["lat"].values, setup.dataset["lon"].values
    predictor = build_predictor(
        start.model_config, start.task_config, setup.statistics, lat, lon, precision=precision
    )
    placement = trainer.Placement.over_all_devices()
    batch_size = batch_size or placement.num_devices
    trainer.check_batch_size(batch_size, placement.num_devices)
    windows = trainer.time_windows(setup.dataset, predictor, steps)
    optimizer = training.default_optimizer(learning_rate)
    opt_state, done = optimizer.init(start.params), 0
    if resume:
        opt_state, done = trainer.load_optimizer_state(target.parent / OPTIMIZER_STATE, opt_state)
    bar = tqdm(total=iterations, desc="training", unit="it", disable=not progress)

    def report(iteration: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    try:
        result = trainer.train(predictor, start.params, optimizer, opt_state, windows, iterations,
                               batch_size, placement, first_iteration=done, on_iteration=report)  # fmt: skip
    finally:
        bar.close()
    total = done + iterations
    trained = dataclasses.replace(
        start,
        params=jax.tree.map(np.asarray, result.params),
        description=f"{start.description.split(' | ')[0]} | fine-tuned by graphcast_zero run-training: "
        f"{total} iterations on {setup.dataset_path.name}",
    )
    if jax.process_index() == 0:  # one writer when several hosts train together
        _save_training(
            target, trained, result, total, setup, steps, learning_rate, batch_size, placement
        )
    log(f"Loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g} over {iterations} iterations "
        f"({total} in all) on {placement.num_devices} device(s); checkpoint: {target}")  # fmt: skip
    return TrainingResult(target, result.losses, total, placement.num_devices, batch_size)


def _starting_checkpoint(
    paths, params, random, dataset, resume, target, random_options
) -> Checkpoint:
    if resume:
        return load_checkpoint(target)
    if not random:
        return load_checkpoint(choose_params(paths, params))
    # The random model is built on the dataset's grid (any grid fits a resolution-0 model).
    path = (
        Path(dataset)
        if dataset
        else newest_file(paths.dataset, "*.nc", "dataset", "run `invoke fetch-data`")
    )
    frame = validation.open_dataset(path)
    return random_checkpoint(frame["lat"].values, frame["lon"].values, **(random_options or {}))


def _save_training(
    target, trained, result, total, setup, steps, learning_rate, batch_size, placement
):
    """Writes the checkpoint, the optimiser state, a loss chart and training.json."""
    from graphcast_zero import plotting, trainer
    from graphcast_zero.checkpoint import save_checkpoint

    history_path = target.parent / "training.json"
    previous = []
    if history_path.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError):
            previous = json.loads(history_path.read_text())["losses"]
    losses = previous[: total - len(result.losses)] + result.losses
    with staged_folder(target.parent) as stage:
        save_checkpoint(trained, stage / target.name)
        trainer.save_optimizer_state(result.opt_state, total, stage / OPTIMIZER_STATE)
        plotting.plot_loss_curve(losses, stage / "loss.png")
        write_json({
            "format": "graphcast-zero-training/1",
            "checkpoint": target.name,
            "dataset": str(setup.dataset_path.absolute()),
            "stats_dir": str(setup.stats_dir.absolute()),
            "steps": steps, "learning_rate": learning_rate, "batch_size": batch_size,
            "devices": placement.num_devices, "iterations": total, "losses": losses,
            **environment_info(),
        }, stage / "training.json")  # fmt: skip


# ----------------------------------------------------------------------------------------- demo


def run_demo(paths: DataPaths, iterations: int = 5, log: Log = print) -> dict:
    """The whole path offline on the generated demo bundle: forecast, scores, pictures, training.

    Returns:
      ``{"inference": InferenceResult, "training": TrainingResult, "seconds": float}``.
    """
    from graphcast_zero import demo

    started = time.perf_counter()
    demo.write_demo_bundle(paths, log=log)
    dataset = paths.dataset / demo.dataset_file_name(demo.DEMO_RESOLUTION, 13, demo.DEMO_STEPS)
    params = paths.params / catalog.DEMO_MODEL.file_name
    forecast = run_inference(paths, params=params, dataset=dataset, log=log)
    log(evaluation.format_metrics_table(
        evaluation.metrics_table(forecast.metrics, variables=[MAP_VARIABLE])
    ))  # fmt: skip
    trained = run_training(paths, params=params, dataset=dataset, iterations=iterations, log=log)
    seconds = time.perf_counter() - started
    log(f"Demo finished in {seconds:.0f} s. Forecast, metrics and pictures: {forecast.run_dir}; "
        f"trained checkpoint: {trained.checkpoint_path}")  # fmt: skip
    return {"inference": forecast, "training": trained, "seconds": seconds}


def _positive_number(value, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise InputError(f"{option} must be a positive number, not {value!r}")
    return number
