"""Scoring and drawing finished runs: find the predictions, score them, write tables and pictures.

Also parses the ``--level`` and ``--lead-time`` options that choose what to show.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import data, evaluation, regions, sources, validation
from graphcast_zero.config import ATMOSPHERIC_VARIABLES, STATIC_VARIABLES, TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.workflow.choosing import newest_run
from graphcast_zero.workflow.options import Log
from graphcast_zero.workflow.run_folder import PREDICTIONS, RUN_INFO

MAP_VARIABLE = "2m_temperature"
CHART_LEVEL = 500


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


def map_choices(variable, level: Optional[int], names, levels) -> list[tuple[str, Optional[int]]]:
    """``--variable`` as (name, level) pairs: ``2m_temperature``, or a comma-separated list
    whose atmospheric names may carry their level (``geopotential:500``); ``--level`` (else
    500 hPa) for those without one.

    Raises:
      InputError: a name that is not predicted, a level that is not, or a level for a surface
        variable.
    """
    items = str(variable or MAP_VARIABLE).split(",")
    choices = []
    for item in items:
        name, _, own = item.strip().partition(":")
        if name not in names:
            raise InputError(f"no {name!r} in the predictions: choose one of {list(names)}")
        # In a list, --level is for the atmospheric variables; alone, it must fit the variable.
        fallback = _as_level(level) if name in ATMOSPHERIC_VARIABLES or len(items) == 1 else None
        choices.append((name, default_level(name, levels, _as_level(own) if own else fallback)))
    return choices


def lead_times(text, available) -> list[np.timedelta64]:
    """``--lead-time`` as lead times: one (``24h``) or a comma-separated list (``24h,120h,240h``);
    by default the last one predicted."""
    if text is None or str(text).strip() == "":
        return [parse_lead_time(None, available)]
    return [parse_lead_time(item.strip(), available) for item in str(text).split(",")]


def write_pictures(
    folder: Path,
    predictions: xr.Dataset,
    targets: xr.Dataset,
    dataset: xr.Dataset,
    metrics: Optional[evaluation.Evaluation],
    variable: str = MAP_VARIABLE,
    level: Optional[int] = None,
    lead_time=None,
    region: Optional[str] = None,
) -> list[Path]:
    """Maps of each chosen variable at each chosen lead time, a GIF per variable over every lead
    time, and the RMSE chart.

    ``variable`` and ``lead_time`` take one value or a comma-separated list (see
    :func:`map_choices`, :func:`lead_times`); ``region`` (``lat0,lat1,lon0,lon1``) zooms the maps
    and GIFs. ``targets`` may cover only the first lead times (a forecast-only dataset): a map or
    GIF at lead times without a target shows the prediction alone, and without ``metrics`` there
    is no RMSE chart.
    """
    from graphcast_zero import plotting

    box = regions.parse_region(region)
    choices = map_choices(variable, level, list(predictions.data_vars), predictions["level"].values)
    leads = lead_times(lead_time, predictions["time"].values)
    mask = dataset.get("land_sea_mask")
    mask = regions.cut(mask, box, region) if mask is not None else None
    pictures = []
    for name, chosen_level in choices:
        label = name + (f"_{chosen_level}hPa" if chosen_level is not None else "")
        title = f"{name}" + (f" {chosen_level} hPa" if chosen_level is not None else "")
        title += _init_label(predictions)
        pred = regions.cut(_field(predictions, name, chosen_level), box, region)
        true = _field(targets, name, chosen_level) if targets.sizes.get("time") else None
        true = regions.cut(true, box, region) if true is not None else None
        for lead in leads:
            at_lead = (
                true.sel(time=lead) if true is not None and lead in true["time"].values else None
            )
            hours = int(pd.Timedelta(lead) / pd.Timedelta(hours=1))
            pictures.append(plotting.plot_map(
                pred.sel(time=lead), at_lead, folder / f"map_{label}_{hours}h.png",
                title=title, land_sea_mask=mask,
            ))  # fmt: skip
        whole = true if true is not None and true.sizes["time"] == pred.sizes["time"] else None
        pictures.append(plotting.animate(
            pred, folder / f"{label}.gif", field_target=whole, land_sea_mask=mask, title=title,
        ))  # fmt: skip
    if metrics is not None:
        chart_level = default_level("temperature", predictions["level"].values, None)
        pictures.append(
            plotting.plot_rmse_vs_lead_time(
                metrics, folder / "rmse_vs_lead_time.png", level=chart_level
            )
        )
    return pictures


def _init_label(predictions: xr.Dataset) -> str:
    """``, init 2026-12-01 06 UTC`` when the predictions carry their valid times."""
    if "datetime" not in predictions.coords:
        return ""
    valid = predictions["datetime"].values.reshape(-1, predictions.sizes["time"])[0, 0]
    init = pd.Timestamp(valid) - pd.Timedelta(predictions["time"].values[0])
    return f", init {init:%Y-%m-%d %H} UTC"


# ---------------------------------------------------------------------------- evaluate and plot


@dataclasses.dataclass(frozen=True)
class ScoredRun:
    """Predictions of a finished run, the matching targets and last inputs, and the scores.

    ``targets`` and ``metrics`` cover the lead times the dataset holds targets for: none for a
    forecast-only dataset (``metrics`` is then None). Everything is in memory: the dataset file
    is closed once its window is read.
    """

    folder: Path
    predictions: xr.Dataset
    targets: xr.Dataset
    dataset: xr.Dataset  # the dataset's static fields (the land-sea mask draws coastlines)
    metrics: Optional[evaluation.Evaluation]


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
    """Loads a run's predictions and its dataset, and scores the lead times that have targets."""
    path = locate_predictions(paths, run, predictions)
    if not path.is_file():
        raise InputError(f"predictions {path} not found: run `invoke run-inference` first")
    try:
        with xr.open_dataset(path, decode_timedelta=True) as handle:
            forecast = handle.load()
    except Exception as error:
        raise InputError(
            f"predictions {path} cannot be read ({type(error).__name__}): run `invoke run-inference` again"
        ) from None
    info = _read_run_info(path.parent)
    source = dataset or info.get("inputs", {}).get("dataset")
    if not source:
        raise InputError(f"{path} has no run.json naming its dataset: pass --dataset")
    forecast = forecast.drop_vars("datetime", errors="ignore")
    # Closed when the window is read: a file held open would pin what a later fetch replaces.
    with sources.open_dataset(source) as frame:
        task = _scoring_task(forecast, frame, info)
        validation.check_time_steps(frame, task, forecast.sizes["time"], Path(source).name)
        inputs, targets, _ = data.forecast_window(frame, task, forecast.sizes["time"])
        scored = slice(0, validation.target_steps(frame, task, forecast.sizes["time"]))
        targets, inputs = targets.isel(time=scored).load(), inputs.load()
        statics = frame[[n for n in STATIC_VARIABLES if n in frame]].load()
    metrics = None
    if targets.sizes["time"]:
        metrics = evaluation.evaluate(forecast.isel(time=scored), targets, last_inputs=inputs)
    return ScoredRun(path.parent, forecast, targets, statics, metrics)


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
    *,
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
    if scored.metrics is None:
        raise InputError(
            "the run's dataset holds no targets for its lead times (a forecast-only dataset): "
            "nothing to score; `invoke plot` draws the forecast"
        )
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
    *,
    run: Optional[str] = None,
    predictions: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    variable: Optional[str] = None,
    level: Optional[int] = None,
    lead_time=None,
    region: Optional[str] = None,
    log: Log = print,
) -> list[Path]:
    """Draws maps (prediction, target, difference), GIFs and the RMSE chart for a run."""
    scored = score_run(paths, run, predictions, dataset)
    validation.check_writable_folder(scored.folder)
    pictures = write_pictures(
        scored.folder, scored.predictions, scored.targets, scored.dataset, scored.metrics,
        variable or MAP_VARIABLE, _as_level(level), lead_time, region,
    )  # fmt: skip
    log(f"Pictures written to {scored.folder}:\n" + "\n".join(f"  {p.name}" for p in pictures))
    return pictures
