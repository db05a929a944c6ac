"""The climatology a hindcast's ACC is measured against: from a store, or computed from the source.

Two kinds, read the same way (:func:`fields_at`):

- a store in WeatherBench2's climatology layout (``--climatology URI``): dims ``hour`` (0, 6, 12,
  18), ``dayofyear`` (1 … 366), ``level``, ``latitude``, ``longitude``, GraphCast's variable names,
  as ``gs://weatherbench2/datasets/era5-hourly-climatology/1990-2019_6h_1440x721.zarr``; a
  forecast's valid time picks its hour and day of year;
- computed from the source (the default): the mean of each variable at each grid point, level
  and hour of day over the 6-hourly frames of a period (``--climatology-period START/END``,
  default the campaign's verifying period: the first initialisation to the last valid time the
  source holds), frames aligned with the initialisations' hours. It is computed once on the cluster, block by block, and kept in the
  hindcast store (``hindcast/climatology``, dims ``hour, level, latitude, longitude``), so a
  resumed campaign scores against the same one. A short period gives a crude climatology: ACC
  then measures anomalies from that period's mean, not from the long-term one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from graphcast_zero import sources
from graphcast_zero.config import STEP
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import source as source_module
from graphcast_zero.hindcast.campaign import Campaign
from graphcast_zero.hindcast.store import GROUP, open_group, quiet_zarr
from graphcast_zero.sources.layouts import zarr_format_options
from graphcast_zero.workflow.options import time_option

CLIMATOLOGY_GROUP = f"{GROUP}/climatology"
FRAMES_PER_BLOCK = 8  # frames per task while computing: two days of 6-hourly frames
GRID_TOLERANCE = 1e-3  # degrees: a climatology point farther from a model point is missing


@dataclasses.dataclass(frozen=True)
class ClimatologySpec:
    """Where the climatology is: a store and, for the computed one, the group inside it.

    Attributes:
      uri: a climatology store (WeatherBench2's layout) or the hindcast store.
      group: ``hindcast/climatology`` for the computed one, None for a store's root.
      endpoint: a GCS-compatible server for ``gs://`` addresses.
      description: what it is, for the store's metadata and the reports.
    """

    uri: str
    group: Optional[str]
    endpoint: Optional[str]
    description: str


_OPENED: dict[ClimatologySpec, xr.Dataset] = {}


def _opened(spec: ClimatologySpec) -> xr.Dataset:
    """The climatology opened lazily, once per process."""
    if spec not in _OPENED:
        if spec.group is not None:
            _OPENED[spec] = open_group(spec.uri, spec.group)
        else:
            _OPENED[spec] = sources.open_dataset(spec.uri, endpoint=spec.endpoint)
    return _OPENED[spec]


def fields_at(
    spec: ClimatologySpec,
    valid_times: np.ndarray,
    variables: tuple[str, ...],
    levels: tuple[int, ...],
    lat: np.ndarray,
    lon: np.ndarray,
) -> xr.Dataset:
    """The climatology at each valid time on the model grid, loaded, in the official naming:
    dims ``time`` (one per valid time, positional), ``level``, ``lat``, ``lon``."""
    store = _opened(spec)
    times = pd.DatetimeIndex(valid_times)
    where = {"hour": xr.DataArray(np.asarray(times.hour), dims="time")}
    if "dayofyear" in store.dims:
        where["dayofyear"] = xr.DataArray(np.asarray(times.day_of_year), dims="time")
    grid = {"latitude": np.asarray(lat), "longitude": np.asarray(lon)}
    selected = store[list(variables)].sel(grid, method="nearest", tolerance=GRID_TOLERANCE)
    if levels and "level" in selected.dims:
        selected = selected.sel(level=list(levels))
    selected = selected.sel(where).drop_vars(["hour", "dayofyear"], errors="ignore")
    selected = selected.rename(latitude="lat", longitude="lon").assign_coords(lat=lat, lon=lon)
    return selected.transpose("time", "level", "lat", "lon", missing_dims="ignore").load()


def check_climatology(spec: ClimatologySpec, campaign: Campaign, lat, lon) -> None:
    """The climatology has every variable, level, grid point and hour the campaign needs.

    Raises:
      InputError: naming what is missing.
    """
    store = _opened(spec)
    missing = [name for name in campaign.variables if name not in store]
    if missing:
        raise InputError(
            f"climatology {spec.uri} lacks {', '.join(missing)}: choose --variables it has, or "
            "drop --climatology to compute one from the source"
        )
    lead_hours = {int(lead / np.timedelta64(1, "h")) for lead in campaign.lead_times}
    hours = sorted({(int(h) + lead) % 24 for h in set(campaign.inits.hour) for lead in lead_hours})
    have_hours = [int(h) for h in store["hour"].values]
    if any(hour not in have_hours for hour in hours):
        raise InputError(
            f"climatology {spec.uri} has hours {have_hours}, the forecasts are valid at {hours}: "
            "initialise at hours it has, or drop --climatology"
        )
    levels = [int(v) for v in store["level"].values] if "level" in store.dims else []
    lacking = [level for level in campaign.levels if level not in levels]
    if lacking:
        raise InputError(f"climatology {spec.uri} lacks levels {lacking}: choose --levels it has")
    for name, wanted in (("latitude", lat), ("longitude", lon)):
        have = np.asarray(store[name].values, np.float64)
        nearest = np.min(np.abs(have[None, :] - np.asarray(wanted, np.float64)[:, None]), axis=1)
        if np.any(nearest > GRID_TOLERANCE):
            raise InputError(
                f"climatology {spec.uri} has no {name} {np.asarray(wanted)[nearest.argmax()]:g}: "
                "use a climatology on the model's grid or a finer one"
            )


def period_frames(
    period: Optional[str], campaign: Campaign, data_end: Optional[pd.Timestamp] = None
) -> pd.DatetimeIndex:
    """The 6-hourly frames of ``--climatology-period START/END``, aligned with the
    initialisations' hours. By default the campaign's verifying period: from the first
    initialisation to the last valid time, or to ``data_end`` (the source's last time) if earlier.

    Raises:
      InputError: a period that cannot be read, or shorter than two frames.
    """
    if period:
        parts = str(period).split("/")
        if len(parts) != 2:
            raise InputError(
                f"--climatology-period {period!r} must be START/END, e.g. 2021-01-01/2021-12-31"
            )
        start = time_option(parts[0], "--climatology-period")
        end = time_option(parts[1], "--climatology-period")
    else:
        start, end = campaign.inits[0], campaign.inits[-1] + campaign.steps * STEP
        end = min(end, data_end) if data_end is not None else end
        start = min(start, end - STEP)  # at least two frames
    start = start + (campaign.inits[0] - start) % STEP  # on the initialisations' hours
    frames = pd.date_range(start, end, freq=STEP)
    if len(frames) < 2:
        raise InputError(
            f"--climatology-period {period!r} holds fewer than two 6-hourly times: make it longer"
        )
    return frames


def blocks(frames: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, int]]:
    """(first frame, count) of each task's block; every block holds at least two frames."""
    starts = list(range(0, len(frames), FRAMES_PER_BLOCK))
    if len(frames) - starts[-1] < 2 and len(starts) > 1:
        starts.pop()  # a one-frame tail joins the block before it
    ends = starts[1:] + [len(frames)]
    return [(frames[a], b - a) for a, b in zip(starts, ends, strict=True)]


def block_sums(campaign: Campaign, first: pd.Timestamp, count: int) -> xr.Dataset:
    """Sums and counts by hour of day of ``count`` frames from ``first`` (a Dask task).

    Returns:
      The kept variables summed in float64, dims ``hour, [level], lat, lon``, and ``count``
      (hour).
    """
    frames = source_module.frames(campaign.source, first, count, campaign.variables)
    hours = pd.DatetimeIndex(frames["datetime"].values[0]).hour
    fields = frames[list(campaign.variables)].isel(batch=0).drop_vars("datetime")
    if campaign.levels:
        fields = fields.sel(level=list(campaign.levels))
    sums = fields.astype(np.float64).assign_coords(hour=("time", hours)).groupby("hour").sum("time")
    counts = [np.count_nonzero(hours == hour) for hour in sums["hour"].values]
    sums["count"] = ("hour", np.asarray(counts, np.float64))
    return sums.drop_vars("time", errors="ignore")


def combine(partials: list[xr.Dataset]) -> xr.Dataset:
    """The means by hour from the blocks' sums, in the store's naming (float32)."""
    total = functools.reduce(_add, partials)
    counts = total["count"]
    means = (total.drop_vars("count") / counts).astype(np.float32)
    return means.rename(lat="latitude", lon="longitude").transpose("hour", ...)


def _add(left: xr.Dataset, right: xr.Dataset) -> xr.Dataset:
    hours = np.union1d(left["hour"].values, right["hour"].values)
    left, right = (d.reindex(hour=hours, fill_value=0.0) for d in (left, right))
    return left + right


def write_computed(path: Path, means: xr.Dataset, description: str) -> None:
    """Keeps the computed climatology in the hindcast store: written under a temporary group
    name and renamed, so a run cut off half-way leaves none rather than half of one."""
    partial = f"{CLIMATOLOGY_GROUP}-partial-{os.getpid()}"
    shutil.rmtree(Path(path) / partial, ignore_errors=True)
    with quiet_zarr():
        means.assign_attrs(description=description).to_zarr(
            path, group=partial, mode="w", consolidated=False, **zarr_format_options()
        )
    os.replace(Path(path) / partial, Path(path) / CLIMATOLOGY_GROUP)
    with quiet_zarr():
        zarr.consolidate_metadata(str(path))  # readers of the store see it as they see the rest


def has_computed(path: Path) -> bool:
    return (Path(path) / CLIMATOLOGY_GROUP / ".zgroup").is_file()


def computed_spec(path: Path) -> ClimatologySpec:
    """The computed climatology kept in the store at ``path`` (opened once: kept for
    :func:`check_climatology` and :func:`fields_at` in this process)."""
    stored = open_group(path, CLIMATOLOGY_GROUP)
    description = stored.attrs.get("description", "computed from the source")
    spec = ClimatologySpec(str(path), CLIMATOLOGY_GROUP, None, str(description))
    _OPENED[spec] = stored
    return spec
