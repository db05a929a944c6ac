"""A hindcast's scores: each forecast's as it is made, the campaign's from all of them.

Every forecast is scored by :func:`graphcast_zero.evaluation.evaluate` (latitude-weighted RMSE,
bias and ACC per variable, level and lead time, and the same for persistence) on the lead times
that have a truth; the scores go into the store beside the forecast
(:mod:`~graphcast_zero.hindcast.store`). The campaign's scores are the same quantities over all
its forecasts, as if they were one batch: the RMSE is the root of the mean squared error over
every forecast (WeatherBench2's convention: the square root after the average over
initialisations), bias and ACC are means over the forecasts. A lead time is averaged over the
forecasts that have a truth for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import evaluation
from graphcast_zero.hindcast.store import SCORE_FIELDS

PER_INIT_FIELDS = ("init_time", "forecast_seconds", *evaluation.ROW_FIELDS)


def score_forecast(
    predictions: xr.Dataset,
    targets: xr.Dataset,
    inputs: xr.Dataset,
    scored_steps: int,
    climatology: Optional[xr.Dataset],
) -> Optional[evaluation.Evaluation]:
    """Scores of one forecast over its first ``scored_steps`` lead times (None when none).

    Args:
      predictions: the kept variables and levels, official layout.
      targets, inputs: the dataset's frames at the lead times and the input frames (any extra
        variables and levels are dropped here).
      scored_steps: how many leading lead times have a truth.
      climatology: the climatology at the valid times of those lead times (dims ``time``, …), or
        None for no ACC.
    """
    if scored_steps < 1:
        return None
    names = list(predictions.data_vars)
    levels = {"level": predictions["level"].values} if "level" in predictions.dims else {}
    scored = predictions.isel(time=slice(0, scored_steps))
    truth = targets[names].sel(levels).isel(time=slice(0, scored_steps))
    if climatology is not None:
        climatology = climatology.assign_coords(time=scored["time"].values)
    return evaluation.evaluate(
        scored, truth, last_inputs=inputs.sel(levels), climatology=climatology
    )


def store_scores(
    scores: Optional[evaluation.Evaluation], template: xr.Dataset, init
) -> dict[str, xr.Dataset]:
    """One forecast's scores laid out for the store: per field, dims ``time`` (this forecast),
    ``prediction_timedelta`` (every lead time, NaN where unscored) and ``level``.

    Args:
      scores: the forecast's scores, or None when nothing was scored.
      template: the store's scores layout for one forecast (dims ``prediction_timedelta[,
        level]``, NaN).
      init: the initialisation time.
    """
    laid_out = {}
    for field in SCORE_FIELDS:
        values = getattr(scores, field) if scores is not None else None
        filled = template.copy(deep=True)
        for name in filled.data_vars:
            if values is not None and name in values:
                score = values[name].rename(time="prediction_timedelta")
                score = score.reindex(prediction_timedelta=filled["prediction_timedelta"].values)
                filled[name] = score.transpose(*filled[name].dims).astype(np.float64)
        times = np.asarray([np.datetime64(pd.Timestamp(init), "ns")])
        laid_out[field] = filled.expand_dims(time=times)
    return laid_out


def as_evaluation(fields: dict[str, xr.Dataset]) -> evaluation.Evaluation:
    """Store score fields without a ``time`` dim as an Evaluation (lead times as ``time``);
    the optional fields (ACC, persistence) only when they hold a value."""
    renamed = {
        field: values.rename(prediction_timedelta="time")
        for field, values in fields.items()
        if field in ("rmse", "bias") or any(values[v].notnull().any() for v in values.data_vars)
    }
    return evaluation.Evaluation(**renamed)


def aggregate(per_init: dict[str, xr.Dataset]) -> evaluation.Evaluation:
    """The campaign's scores from every forecast's (dims ``time``, ``prediction_timedelta``, …):
    RMSE as the root of the mean squared RMSE, bias and ACC as means, NaN skipped."""
    combined = {}
    for field, values in per_init.items():
        if field.endswith("rmse"):
            combined[field] = np.sqrt((values**2).mean("time", skipna=True))
        else:
            combined[field] = values.mean("time", skipna=True)
    return as_evaluation(combined)


def per_init_rows(
    per_init: dict[str, xr.Dataset], seconds: xr.DataArray, level: Optional[int]
) -> list[dict]:
    """The per-initialisation table: every forecast's rows of
    :func:`graphcast_zero.evaluation.metrics_table`, atmospheric variables at ``level``."""
    rows = []
    for index, init in enumerate(per_init["rmse"]["time"].values):
        one = {field: values.isel(time=index, drop=True) for field, values in per_init.items()}
        if not any(one["rmse"][name].notnull().any() for name in one["rmse"].data_vars):
            continue  # not done, or nothing to score
        scores = as_evaluation(one)
        stamp = pd.Timestamp(init).isoformat()
        took = float(seconds.values[index])
        for row in evaluation.metrics_table(scores, levels=None if level is None else [level]):
            if row["rmse"] is not None:
                rows.append({"init_time": stamp, "forecast_seconds": took, **row})
    return rows


def write_per_init_csv(rows: list[dict], path: Path) -> Path:
    """Writes the per-initialisation table (missing values as empty cells), atomically."""
    return evaluation.write_rows_csv(rows, PER_INIT_FIELDS, path)
