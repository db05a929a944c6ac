"""Where a hindcast's initial conditions and truth come from, one initialisation at a time.

A :class:`SourceSpec` names a store that the dataset seam (:mod:`graphcast_zero.sources`) opens:
an ERA5 store in the ARCO-ERA5 or WeatherBench2 layout (each window converted exactly as
``fetch-data --source era5`` converts it), or a dataset already in the official layout that spans
the campaign (a NetCDF or Zarr written by ``fetch-data --source era5 --steps N``, for example), of
which windows are selected. The spec is small and picklable: Dask workers get it, open the store
once per process (:func:`opened`) and read only the frames of the window they forecast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import sources
from graphcast_zero.config import STEP, TOA_RADIATION
from graphcast_zero.errors import GraphCastZeroError, InputError
from graphcast_zero.sources import era5_plan
from graphcast_zero.sources.era5_convert import read_dataset
from graphcast_zero.sources.era5_fetch import Candidate, choose_candidate, store_uris
from graphcast_zero.sources.layouts import (
    StoreLayout,
    check_layout,
    detect_layout,
    valid_range,
)
from graphcast_zero.sources.official_file import INPUT_FRAMES, official_grid

ERA5 = "era5"  # an ERA5 store, converted window by window
OFFICIAL = "official"  # a dataset in the official layout, windows selected
READS_PER_WINDOW = 4  # parallel chunk reads of one conversion


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A store the windows are read from.

    Attributes:
      uri: the store (a ``gs://`` address, a local Zarr folder or NetCDF file).
      endpoint: a GCS-compatible server for ``gs://`` stores (None: Google's, or the emulator).
      kind: ``era5`` (an ERA5 store layout) or ``official`` (the official dataset layout).
      resolution: the model grid's spacing in degrees (ERA5 stores: the points selected).
      levels: the pressure levels the model reads.
    """

    uri: str
    endpoint: Optional[str]
    kind: str
    resolution: float
    levels: tuple[int, ...]

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        layout = "an ERA5 store" if self.kind == ERA5 else "an official-layout dataset"
        return f"{self.uri}{where} ({layout}, {self.resolution:g}°, {len(self.levels)} levels)"


# Per process: each Dask worker opens a store once and keeps it (metadata only).
_OPENED: dict[SourceSpec, tuple[xr.Dataset, Optional[StoreLayout]]] = {}


def opened(spec: SourceSpec) -> tuple[xr.Dataset, Optional[StoreLayout]]:
    """The store opened lazily, with its ERA5 layout (None for an official-layout dataset)."""
    if spec not in _OPENED:
        store = sources.open_dataset(spec.uri, endpoint=spec.endpoint)
        layout = None
        if spec.kind == ERA5:
            layout = detect_layout(store, spec.uri)
            check_layout(store, layout, spec.uri)
        _OPENED[spec] = (store, layout)
    return _OPENED[spec]


def is_official(dataset: xr.Dataset) -> bool:
    """Whether a dataset is in the official layout (``datetime`` frames on a ``batch`` axis)."""
    return "datetime" in dataset.coords and "batch" in dataset.dims


def window(spec: SourceSpec, init: pd.Timestamp, steps: int) -> xr.Dataset:
    """The official-layout frames of one forecast, loaded: 2 inputs ending at ``init``, then
    ``steps`` targets (NaN past the store's end).

    Raises:
      InputError: the store does not cover the window's inputs.
    """
    return frames(spec, pd.Timestamp(init) - (INPUT_FRAMES - 1) * STEP, INPUT_FRAMES + steps)


def frames(
    spec: SourceSpec,
    first: pd.Timestamp,
    count: int,
    variables: Optional[Sequence[str]] = None,
) -> xr.Dataset:
    """``count`` (at least 2) consecutive 6-hourly frames from ``first`` in the official layout,
    loaded.

    Args:
      spec, first, count: the source and the frames.
      variables: read only these (an ERA5 store's other variables are then NaN); None: all.

    Raises:
      InputError: the store does not hold them.
    """
    store, layout = opened(spec)
    planned = plan_frames(spec, first, count)
    if layout is None:
        return (planned if variables is None else planned[list(variables)]).load()
    if variables is not None:
        planned = dataclasses.replace(
            planned,
            fields=tuple(f for f in planned.fields if f.name in variables),
            computed_solar_frames=(
                planned.computed_solar_frames if TOA_RADIATION in variables else ()
            ),
        )
    # Built in memory exactly as fetch-data writes a dataset.
    return read_dataset(store, planned, workers=READS_PER_WINDOW)


def plan_frames(spec: SourceSpec, first: pd.Timestamp, count: int):
    """What :func:`frames` reads, decided from metadata alone: the lazy selection of an
    official-layout dataset, or the conversion plan of an ERA5 store.

    Raises:
      InputError: the store does not hold the frames.
    """
    store, layout = opened(spec)
    init = pd.Timestamp(first) + (INPUT_FRAMES - 1) * STEP
    steps = count - INPUT_FRAMES
    if layout is None:
        return sources.window_at(store, init, INPUT_FRAMES, steps, name=spec.uri)
    request = era5_plan.Era5Request(init, steps, spec.resolution, spec.levels)
    return era5_plan.plan_conversion(store, layout, spec.uri, request)


def last_time(spec: SourceSpec) -> pd.Timestamp:
    """The last time the source holds data for (an ERA5 store's valid range, ERA5T included)."""
    store, layout = opened(spec)
    if layout is None:
        return pd.Timestamp(store["datetime"].values.reshape(-1)[-1])
    return valid_range(store, layout)[1]


def grid(spec: SourceSpec) -> tuple[np.ndarray, np.ndarray]:
    """The model grid's latitudes (ascending) and longitudes, as the windows carry them."""
    if spec.kind == OFFICIAL:
        store, _ = opened(spec)
        return store["lat"].values, store["lon"].values
    lat, lon = official_grid(spec.resolution)
    return lat.astype(np.float32), lon.astype(np.float32)


def resolve_source(
    store: str,
    endpoint: Optional[str],
    inits: pd.DatetimeIndex,
    steps: int,
    resolution: Optional[float],
    levels: tuple[int, ...],
) -> SourceSpec:
    """The store for a campaign, checked to cover its first and last initialisation.

    ``store`` is ``auto`` (the cheaper public ERA5 store that covers both), ``arco``, ``wb2``,
    or any address the dataset seam opens: an ERA5 store in either layout or an official-layout
    dataset.

    Raises:
      InputError, FetchError: no store covers the campaign, or the one named cannot be read.
    """
    uris = store_uris(store)
    if len(uris) == 1:
        dataset = sources.open_dataset(uris[0], endpoint=endpoint)
        if is_official(dataset):
            return _official_source(dataset, uris[0], endpoint, inits, steps, levels)
        opened_first = {uris[0]: dataset}
    else:
        opened_first = {}
    candidates = []
    for uri in uris:
        try:
            dataset = opened_first.get(uri) or sources.open_dataset(uri, endpoint=endpoint)
            candidates.append(_era5_candidate(dataset, uri, inits, steps, resolution, levels))
        except GraphCastZeroError as error:
            candidates.append(Candidate(uri, error=error))
    chosen = choose_candidate(candidates, latest=False)
    spec = SourceSpec(chosen.uri, endpoint, ERA5, float(chosen.plan.request.resolution), levels)
    _OPENED[spec] = (chosen.store, chosen.plan.layout)
    return spec


def _era5_candidate(
    dataset: xr.Dataset, uri: str, inits: pd.DatetimeIndex, steps: int, resolution, levels
) -> Candidate:
    """An ERA5 store checked against the campaign's first and last windows, planned on both."""
    if not resolution:
        raise InputError(
            "the model fits any grid (resolution 0): pass --resolution, e.g. 1.0 or 4.0"
        )
    layout = detect_layout(dataset, uri)
    check_layout(dataset, layout, uri)
    _check_every(inits, layout.time_step, uri)
    plans = [
        era5_plan.plan_conversion(
            dataset, layout, uri, era5_plan.Era5Request(when, steps, float(resolution), levels)
        )
        for when in (inits[0], inits[-1])
    ]
    return Candidate(uri, plans[0], dataset)


def _official_source(
    dataset: xr.Dataset, uri: str, endpoint, inits: pd.DatetimeIndex, steps: int, levels
) -> SourceSpec:
    """An official-layout dataset checked to hold every window of the campaign."""
    _check_every(inits, STEP, uri)
    for when in (inits[0], inits[-1]):
        sources.window_at(dataset, when, INPUT_FRAMES, steps, name=uri)
    have = [int(v) for v in dataset["level"].values]
    missing = [level for level in levels if level not in have]
    if missing:
        raise InputError(f"dataset {uri} lacks pressure levels {missing}: fetch one with them")
    lat = np.asarray(dataset["lat"].values, np.float64)
    spec = SourceSpec(uri, endpoint, OFFICIAL, float(abs(lat[1] - lat[0])), levels)
    _OPENED[spec] = (dataset, None)
    return spec


def _check_every(inits: pd.DatetimeIndex, step: pd.Timedelta, uri: str) -> None:
    if len(inits) > 1 and (inits[1] - inits[0]) % step:
        hours = int(step / pd.Timedelta(hours=1))
        raise InputError(
            f"--every {inits[1] - inits[0]} is not a multiple of the {hours}-hour time step of "
            f"{uri}: use e.g. --every {max(hours, 12)}h"
        )
