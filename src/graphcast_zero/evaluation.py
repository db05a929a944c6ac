"""Forecast scores: latitude-weighted RMSE, bias and ACC per variable, level and lead time.

Pure xarray functions in the WeatherBench 2 manner. Forecasts and targets are Datasets in the
official prediction layout (dims ``batch``, ``time`` as lead-time timedeltas, ``lat``, ``lon``,
plus ``level`` for atmospheric variables), matched by dimension name, not order. Every score
averages over ``batch``, ``lat`` and ``lon`` with area weights and keeps ``time`` (and ``level``).
Persistence, the last input frame held fixed, is the baseline a forecast has to beat. The writers
at the end save the scores as JSON or CSV rows, atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import InputError

AVERAGED_DIMS = ("batch", "lat", "lon")
COORD_DIMS = ("time", "level", "lat", "lon")
ROW_FIELDS = (
    "variable",
    "level",
    "lead_time_hours",
    "rmse",
    "bias",
    "acc",
    "persistence_rmse",
    "persistence_bias",
    "persistence_acc",
    "skill_vs_persistence",
)
METRICS_FORMAT = "graphcast-zero-metrics/1"
# The level that stands for each atmospheric variable in one-number summaries, as is customary.
HEADLINE_LEVEL = 500


def latitude_weights(lat) -> xr.DataArray:
    """Area weights of latitude rows: proportional to cos(lat), with mean 1.

    Each row stands for the band between the midpoints to its neighbours (half a spacing beyond
    the outer rows, clipped at ±90°). Its area, sin(upper) − sin(lower), equals
    2·sin(Δ/2)·cos(lat) on an evenly spaced grid, so interior rows are weighted exactly by
    cos(lat); a row on a pole, where cos(lat) = 0, keeps the small polar cap it stands for
    (2·sin²(Δ/4)). These are the official training loss's weights too, on the grids it accepts
    (:func:`graphcast_zero.loss.check_latitudes`).

    Args:
      lat: latitudes in degrees, ascending or descending, no repeats.

    Returns:
      The weights as a DataArray on dim ``lat``.

    Raises:
      InputError: for an empty list, repeated latitudes or values beyond ±90°.
    """
    degrees = np.asarray(lat, dtype=np.float64)  # [num_lat]
    if degrees.ndim != 1 or degrees.size == 0 or np.any(np.abs(degrees) > 90 + 1e-9):
        raise InputError(f"latitudes must be a list of values within ±90°, got {degrees}")
    order = np.argsort(degrees)
    radians = np.deg2rad(degrees[order])
    if np.any(np.diff(radians) <= 0):
        raise InputError("latitudes repeat: the lat coordinate must hold distinct values")
    if degrees.size == 1:
        areas = np.ones(1)
    else:
        middles = (radians[1:] + radians[:-1]) / 2  # [num_lat - 1]
        lower = np.concatenate([[2 * radians[0] - middles[0]], middles])
        upper = np.concatenate([middles, [2 * radians[-1] - middles[-1]]])
        upper, lower = np.clip(upper, -np.pi / 2, np.pi / 2), np.clip(lower, -np.pi / 2, np.pi / 2)
        # sin(upper) − sin(lower) as a product: no cancellation in the thin polar caps.
        areas = 2 * np.cos((upper + lower) / 2) * np.sin((upper - lower) / 2)
    weights = np.empty_like(areas)
    weights[order] = areas / areas.mean()
    return xr.DataArray(weights, dims=("lat",), coords={"lat": degrees})


def rmse(predictions: xr.Dataset, targets: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted root-mean-square error per variable, (level) and lead time."""
    predictions, targets = _checked(predictions, targets, "targets")
    return _per_variable(
        predictions, lambda name: np.sqrt(_mean(_error(predictions, targets, name) ** 2))
    )


def bias(predictions: xr.Dataset, targets: xr.Dataset) -> xr.Dataset:
    """Latitude-weighted mean error (prediction − target) per variable, (level) and lead time."""
    predictions, targets = _checked(predictions, targets, "targets")
    return _per_variable(predictions, lambda name: _mean(_error(predictions, targets, name)))


def acc(predictions: xr.Dataset, targets: xr.Dataset, climatology: xr.Dataset) -> xr.Dataset:
    """Anomaly correlation coefficient per variable, (level) and lead time.

    Anomalies are departures from ``climatology`` (uncentred, as in WeatherBench 2); the
    correlation is area-weighted over each map, then averaged over the batch.

    Args:
      predictions: the forecast.
      targets: the truth, with the forecast's variables and coordinates.
      climatology: the expected value of each variable, broadcastable to the targets (for example
        dims ``lat, lon[, level]``).
    """
    predictions, targets = _checked(predictions, targets, "targets")
    climatology = _checked(predictions, climatology, "climatology", broadcast=True)[1]
    weights = latitude_weights(predictions.lat).assign_coords(lat=predictions.lat)

    def map_sum(field: xr.DataArray) -> xr.DataArray:
        return field.weighted(weights).sum(["lat", "lon"])

    def correlation(name: str) -> xr.DataArray:
        forecast = predictions[name].astype(np.float64) - climatology[name]
        truth = targets[name].astype(np.float64) - climatology[name]
        per_map = map_sum(forecast * truth) / np.sqrt(map_sum(forecast**2) * map_sum(truth**2))
        return per_map.mean("batch") if "batch" in per_map.dims else per_map

    return _per_variable(predictions, correlation)


def persistence_forecast(last_input_frame: xr.Dataset, lead_times) -> xr.Dataset:
    """The baseline that holds the last input frame fixed for every lead time.

    Args:
      last_input_frame: the latest observed state; if it has a ``time`` dim, its last entry.
      lead_times: the forecast's lead times (timedeltas or anything ``pandas.to_timedelta`` takes).

    Returns:
      The frame repeated along a new ``time`` dim holding the lead times, dims ``batch, time, ...``.
    """
    frame = last_input_frame
    if "time" in frame.dims:
        frame = frame.isel(time=-1)
    frame = frame.drop_vars([name for name in frame.coords if name not in frame.dims])
    lead = pd.to_timedelta(np.atleast_1d(np.asarray(lead_times))).to_numpy()  # [num_lead]
    forecast = frame.expand_dims(time=lead)
    return forecast.transpose(*[dim for dim in ("batch", "time") if dim in forecast.dims], ...)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Scores of a forecast and of persistence: Datasets of variables with dims (time[, level]).

    Persistence scores cover the variables the last input frame held (a precipitation that is
    only an output has none); ACC is present only when a climatology was given.
    """

    rmse: xr.Dataset
    bias: xr.Dataset
    acc: Optional[xr.Dataset] = None
    persistence_rmse: Optional[xr.Dataset] = None
    persistence_bias: Optional[xr.Dataset] = None
    persistence_acc: Optional[xr.Dataset] = None

    @property
    def variables(self) -> list[str]:
        return [str(name) for name in self.rmse.data_vars]


def evaluate(
    predictions: xr.Dataset,
    targets: xr.Dataset,
    last_inputs: Optional[xr.Dataset] = None,
    climatology: Optional[xr.Dataset] = None,
) -> Evaluation:
    """Scores a forecast and, given the last inputs, the persistence baseline against targets.

    Args:
      predictions: the forecast in the official layout.
      targets: the truth at the same lead times, levels and grid (extra variables are ignored).
      last_inputs: the last input frame (or the inputs; their last time is used) for persistence.
      climatology: per-variable expected values; adds ACC scores.

    Returns:
      The scores.

    Raises:
      InputError: when targets, inputs or climatology miss a variable or differ in coordinates.
    """
    scores = {"rmse": rmse(predictions, targets), "bias": bias(predictions, targets)}
    if climatology is not None:
        scores["acc"] = acc(predictions, targets, climatology)
    held = [] if last_inputs is None else [v for v in predictions.data_vars if v in last_inputs]
    if held:
        if "time" in predictions.dims:
            baseline = persistence_forecast(last_inputs[held], predictions.time.values)
        else:
            baseline = persistence_forecast(last_inputs[held], [0]).isel(time=0, drop=True)
        baseline = _checked(predictions[held], baseline, "last inputs")[1]
        scores["persistence_rmse"] = rmse(baseline, targets[held])
        scores["persistence_bias"] = bias(baseline, targets[held])
        if climatology is not None:
            scores["persistence_acc"] = acc(baseline, targets[held], climatology)
    return Evaluation(**scores)


def metrics_table(
    metrics: Evaluation,
    variables: Optional[Sequence[str]] = None,
    levels: Optional[Sequence[int]] = None,
) -> list[dict]:
    """One row per variable, level and lead time with every score (``None`` where missing).

    ``skill_vs_persistence`` is 1 − rmse / persistence_rmse: positive when the model beats
    persistence, 1 for a perfect forecast.
    """
    rows = []
    for name in variables or metrics.variables:
        if name not in metrics.rmse:
            raise InputError(
                f"no scores for {name!r}; scored variables: {', '.join(metrics.variables)}"
            )
        grid = metrics.rmse[name]
        level_values = grid.level.values if "level" in grid.dims else [None]
        times = grid.time.values if "time" in grid.dims else [None]
        for level in level_values:
            if level is not None and levels is not None and int(level) not in levels:
                continue
            for time in times:
                where = {k: v for k, v in (("level", level), ("time", time)) if v is not None}
                row = {"variable": name, "level": None if level is None else int(level)}
                row["lead_time_hours"] = None if time is None else _hours(time)
                for field in ROW_FIELDS[3:-1]:
                    row[field] = _value(getattr(metrics, field), name, where)
                skill = None
                if row["persistence_rmse"]:
                    skill = 1.0 - row["rmse"] / row["persistence_rmse"]
                rows.append({**row, "skill_vs_persistence": skill})
    return rows


def skill_vs_persistence(
    metrics: Evaluation, lead_time_hours: float, level: int = HEADLINE_LEVEL
) -> dict[str, float]:
    """Skill against persistence (1 − rmse / persistence_rmse) per variable at one lead time.

    Args:
      metrics: scores with persistence scores.
      lead_time_hours: the lead time to read.
      level: the pressure level (hPa) that stands for each atmospheric variable.

    Returns:
      ``{variable: skill}`` for every variable persistence was scored on, in the metrics' order.

    Raises:
      InputError: when nothing was scored at that lead time (and level) against persistence.
    """
    skills = {
        row["variable"]: row["skill_vs_persistence"]
        for row in metrics_table(metrics, levels=[level])
        if row["lead_time_hours"] == lead_time_hours and row["skill_vs_persistence"] is not None
    }
    if not skills:
        raise InputError(
            f"no skill against persistence at {lead_time_hours} h ({level} hPa): score a forecast "
            "that reaches this lead time, with its last inputs"
        )
    return skills


def persistence_verdict(
    skills: dict[str, float], lead_time_hours: float, level: int = HEADLINE_LEVEL
) -> str:
    """One line saying on how many variables a forecast beats persistence (positive skill)."""
    beaten = sum(skill > 0 for skill in skills.values())
    return (
        f"The forecast beats persistence at {lead_time_hours:g} h on {beaten} of {len(skills)} "
        f"variables (atmospheric ones at {level} hPa)."
    )


def format_metrics_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`metrics_table` as fixed-width text for a terminal."""
    filled = [field for field in ROW_FIELDS[3:] if any(row.get(field) is not None for row in rows)]
    columns = [*ROW_FIELDS[:3], *filled]
    heads = {"lead_time_hours": "lead (h)", "skill_vs_persistence": "skill"}
    cells = [[heads.get(c, c.replace("persistence_", "persist. ")) for c in columns]]
    for row in rows:
        cells.append([_cell(row.get(c)) for c in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            text.rjust(width) if i else text.ljust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def write_metrics_json(metrics: Evaluation, path) -> Path:
    """Writes the metrics rows as JSON (missing and NaN values as null); returns the path."""
    rows = metrics_table(metrics)  # NaN scores are already None: strict JSON
    text = json.dumps(
        {"format": METRICS_FORMAT, "columns": list(ROW_FIELDS), "rows": rows},
        indent=1,
        allow_nan=False,
    )
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def write_metrics_csv(metrics: Evaluation, path) -> Path:
    """Writes the metrics rows as CSV (missing values as empty cells); returns the path."""
    return write_rows_csv(metrics_table(metrics), ROW_FIELDS, path)


def write_rows_csv(rows, fieldnames, path) -> Path:
    """Writes dict rows as CSV with ``fieldnames`` as the header (None as an empty cell),
    atomically; returns the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return Path(path)


def read_metrics_json(path) -> Evaluation:
    """Reads a file of :func:`write_metrics_json` back into scores (to chart a finished run)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if payload.get("format") != METRICS_FORMAT:
            raise ValueError("unknown format")
        frame = pd.DataFrame(payload["rows"], columns=list(ROW_FIELDS))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(
            f"{path}: not a metrics file written by write_metrics_json ({error})"
        ) from None
    scores = {}
    for field in ROW_FIELDS[3:-1]:
        per_variable = {
            name: _rows_to_array(group, field)
            for name, group in frame.groupby("variable", sort=False)
        }
        if any(array.notnull().any() for array in per_variable.values()):
            scores[field] = xr.Dataset({k: v for k, v in per_variable.items() if v.notnull().any()})
    return Evaluation(**scores)


def _checked(
    predictions: xr.Dataset, other: xr.Dataset, what: str, broadcast: bool = False
) -> tuple[xr.Dataset, xr.Dataset]:
    """Checks ``other`` matches the predictions' variables, dims and coordinates.

    With ``broadcast`` (a climatology), each variable of ``other`` may lack some of the dims.

    Returns:
      The predictions and ``other`` restricted to their variables, with identical coordinates.
    """
    if not isinstance(predictions, xr.Dataset) or not isinstance(other, xr.Dataset):
        raise InputError(f"predictions and {what} must be xarray Datasets")
    names = list(predictions.data_vars)
    if not names:
        raise InputError("the predictions hold no variables to score")
    missing = [name for name in names if name not in other.data_vars]
    if missing:
        raise InputError(f"{what}: missing variable(s) {', '.join(missing)} of the predictions")
    for name in names:
        dims, other_dims = set(predictions[name].dims), set(other[name].dims)
        fits = other_dims <= dims if broadcast else other_dims == dims
        if not fits or not {"lat", "lon"} <= dims:
            raise InputError(
                f"{name}: predictions have dims {sorted(dims)}, {what} {sorted(other_dims)}; "
                f"{what} need {'no other' if broadcast else 'the same'} dims, with lat and lon"
            )
    other = other[names]
    shared = set(predictions.dims) & set(other.dims)
    for dim in shared:
        _check_coordinate(dim, predictions, other, what)
    return predictions, other.assign_coords(
        {d: predictions[d] for d in COORD_DIMS if d in predictions.coords and d in shared}
    )


def _check_coordinate(dim: str, predictions: xr.Dataset, other: xr.Dataset, what: str) -> None:
    if predictions.sizes[dim] != other.sizes[dim]:
        raise InputError(
            f"{what} have {other.sizes[dim]} {dim} values, the predictions "
            f"{predictions.sizes[dim]}; select the same {dim} values"
        )
    if dim in predictions.coords and dim in other.coords:
        mine, theirs = predictions[dim].values, other[dim].values
        if mine.dtype.kind in "fiu" and theirs.dtype.kind in "fiu":
            same = np.allclose(mine, theirs, rtol=0, atol=1e-4)
        else:
            same = np.array_equal(mine, theirs)
        if not same:
            raise InputError(
                f"{what} {dim} coordinate ({_describe(theirs)}) differs from the "
                f"predictions' ({_describe(mine)}); select the same {dim} values"
            )


def _error(predictions: xr.Dataset, targets: xr.Dataset, name: str) -> xr.DataArray:
    # float64 so that a float32 forecast's error is not rounded against large values (geopotential).
    return predictions[name].astype(np.float64) - targets[name].astype(np.float64)


def _mean(field: xr.DataArray) -> xr.DataArray:
    weights = latitude_weights(field.lat).assign_coords(lat=field.lat)
    return field.weighted(weights).mean([dim for dim in AVERAGED_DIMS if dim in field.dims])


def _per_variable(predictions: xr.Dataset, score) -> xr.Dataset:
    return xr.Dataset({name: score(name) for name in predictions.data_vars})


def _hours(lead_time) -> float | int:
    hours = float(pd.to_timedelta(lead_time) / pd.Timedelta(hours=1))
    return int(hours) if hours.is_integer() else hours


def _value(scores: Optional[xr.Dataset], name: str, where: dict) -> Optional[float]:
    if scores is None or name not in scores:
        return None
    value = float(scores[name].sel(where))
    return value if np.isfinite(value) else None


def _rows_to_array(rows: pd.DataFrame, field: str) -> xr.DataArray:
    keys = [key for key in ("lead_time_hours", "level") if rows[key].notnull().any()]
    table = rows.assign(**{field: pd.to_numeric(rows[field])}).set_index(keys)[field]
    array = xr.DataArray.from_series(table)
    if "lead_time_hours" in array.dims:
        hours = pd.to_timedelta(array.lead_time_hours.values, unit="h").to_numpy()
        array = array.rename(lead_time_hours="time").assign_coords(time=hours.astype("m8[ns]"))
    if "level" in array.dims:
        array = array.assign_coords(level=array.level.values.astype(int))
    return array.transpose(*[dim for dim in ("time", "level") if dim in array.dims])


def _describe(values: np.ndarray) -> str:
    if values.size == 0:
        return "empty"
    return f"{values.size} values {values.flat[0]}..{values.flat[-1]}"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
