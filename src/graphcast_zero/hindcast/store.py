"""The campaign's Zarr store, in WeatherBench2's forecast layout, written one region per forecast.

Layout (as WeatherBench2's published GraphCast forecasts): dims ``time`` (the initialisation),
``prediction_timedelta`` (6 h … steps × 6 h), ``level`` (hPa, for atmospheric variables),
``latitude`` (ascending, -90 → 90) and ``longitude`` (0 → 360 - Δ); variables keep GraphCast's
names; float32; one chunk per initialisation, lead time and variable (all levels, whole globe).
Zarr format 2 with consolidated metadata, so ``xarray.open_zarr`` and WeatherBench2 read it as
they read the published stores.

Beside the forecasts, two groups that forecast readers never see:

- ``scores/<score>`` (``rmse``, ``bias``, ``acc`` and their ``persistence_`` twins): each
  forecast's scores per variable, lead time (and level), dims ``time, prediction_timedelta[,
  level]``;
- ``hindcast``: ``complete`` (1 once a forecast and its scores are written), ``forecast_seconds``,
  the computed climatology when there is one (``hindcast/climatology``) and the lock file.

The whole ``time`` axis is allocated when the store is created, so every forecast owns its own
chunks: workers write their regions independently, and a forecast written twice (a retried task)
lands in the same place. ``complete`` is written last, so a forecast cut off half-way reads as
not done and is redone by the next run.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero.config import ATMOSPHERIC_VARIABLES
from graphcast_zero.errors import InputError
from graphcast_zero.sources.layouts import zarr_format_options

FORMAT = "graphcast-zero-hindcast/1"
GROUP = "hindcast"
SCORE_GROUP = "scores"
SCORE_FIELDS = ("rmse", "bias", "acc", "persistence_rmse", "persistence_bias", "persistence_acc")
FINGERPRINT_ATTR = "hindcast_campaign"


@contextlib.contextmanager
def quiet_zarr() -> Iterator[None]:
    """zarr warns about the lock file, which is not part of the Zarr hierarchy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr")
        yield


def forecast_template(
    inits: np.ndarray,
    lead_times: np.ndarray,
    variables: tuple[str, ...],
    levels: tuple[int, ...],
    lat: np.ndarray,
    lon: np.ndarray,
) -> xr.Dataset:
    """The forecast variables as lazy NaN arrays of the store's full shape (nothing computed)."""
    import dask.array as da

    coords = {
        "time": np.asarray(inits, "M8[ns]"),
        "prediction_timedelta": np.asarray(lead_times, "m8[ns]"),
        "latitude": np.asarray(lat, np.float32),
        "longitude": np.asarray(lon, np.float32),
    }
    if levels:
        coords["level"] = np.asarray(levels, np.int64)
    data_vars = {}
    for name in variables:
        dims = forecast_dims(name)
        shape = tuple(len(coords[d]) for d in dims)
        chunks = tuple(
            1 if d in ("time", "prediction_timedelta") else n
            for d, n in zip(dims, shape, strict=True)
        )
        data_vars[name] = (dims, da.full(shape, np.nan, dtype=np.float32, chunks=chunks))
    return xr.Dataset(data_vars, coords=coords)


def forecast_dims(name: str) -> tuple[str, ...]:
    if name in ATMOSPHERIC_VARIABLES:
        return ("time", "prediction_timedelta", "level", "latitude", "longitude")
    return ("time", "prediction_timedelta", "latitude", "longitude")


def scores_template(forecast: xr.Dataset, lazy: bool = True) -> xr.Dataset:
    """One score per variable, initialisation, lead time (and level): NaN, float64; lazy (Dask)
    for the store's creation, in memory for one forecast's region."""
    import dask.array as da

    data_vars = {}
    for name, variable in forecast.data_vars.items():
        dims = tuple(d for d in variable.dims if d not in ("latitude", "longitude"))
        shape = tuple(forecast.sizes[d] for d in dims)
        if lazy:
            values = da.full(shape, np.nan, dtype=np.float64, chunks=(1,) + shape[1:])
        else:
            values = np.full(shape, np.nan, dtype=np.float64)
        data_vars[name] = (dims, values)
    keep = [c for c in ("time", "prediction_timedelta", "level") if c in forecast.coords]
    return xr.Dataset(data_vars, coords={c: forecast[c] for c in keep})


def status_template(inits: np.ndarray) -> xr.Dataset:
    import dask.array as da

    count = len(inits)
    return xr.Dataset(
        {
            "complete": (("time",), da.zeros(count, dtype=np.int8, chunks=1)),
            "forecast_seconds": (("time",), da.full(count, np.nan, dtype=np.float64, chunks=1)),
        },
        coords={"time": np.asarray(inits, "M8[ns]")},
    )


def create_store(path: Path, forecast: xr.Dataset, fingerprint: dict, attrs: dict) -> None:
    """Writes the store's metadata and coordinates (no forecast values): every group, its
    arrays allocated over the whole ``time`` axis, metadata consolidated."""
    import zarr

    options = zarr_format_options()
    root_attrs = {**attrs, FINGERPRINT_ATTR: json.dumps(fingerprint, sort_keys=True)}
    encoding = {name: {"_FillValue": np.float32(np.nan)} for name in forecast.data_vars}
    encoding["time"] = {"units": "hours since 1970-01-01", "dtype": "int64"}
    encoding["prediction_timedelta"] = {"units": "hours", "dtype": "int64"}
    with quiet_zarr():
        forecast.assign_attrs(root_attrs).to_zarr(
            path, mode="a", compute=False, consolidated=False, encoding=encoding, **options
        )
        scores = scores_template(forecast)
        for field in SCORE_FIELDS:
            scores.to_zarr(
                path, group=f"{SCORE_GROUP}/{field}", mode="a", compute=False,
                consolidated=False, **options,
            )  # fmt: skip
        status_template(forecast["time"].values).to_zarr(
            path, group=GROUP, mode="a", compute=False, consolidated=False, **options
        )
        zarr.consolidate_metadata(str(path))


def check_fingerprint(path: Path, fingerprint: dict) -> None:
    """An existing store was made by the same campaign (times, steps, variables, levels, grid,
    checkpoint, source), so resuming it adds to the same forecasts.

    Raises:
      InputError: the store is not a hindcast store, or differs; the message names the first
        difference.
    """
    try:
        with quiet_zarr():
            attrs = xr.open_zarr(path, consolidated=True, chunks=None, decode_timedelta=True).attrs
        stored = json.loads(attrs[FINGERPRINT_ATTR])
    except Exception:  # zarr and json raise many types for a store that is not ours
        raise InputError(
            f"--output {path} exists and is not a hindcast store: choose another --output"
        ) from None
    for key in sorted(set(fingerprint) | set(stored)):
        if stored.get(key) != fingerprint.get(key):
            raise InputError(
                f"--output {path} holds another campaign ({key}: {stored.get(key)!r}, now "
                f"{fingerprint.get(key)!r}): rerun with its options, or choose another --output"
            )


def is_store(path: Path) -> bool:
    return (Path(path) / ".zgroup").is_file()


def write_forecast(path: Path, index: int, forecast: xr.Dataset) -> None:
    """Writes one initialisation's forecast (dims ``time`` of size 1, …) into its region."""
    _write_region(path, None, index, forecast)


def write_scores(path: Path, index: int, scores: dict[str, xr.Dataset]) -> None:
    """Writes one initialisation's scores, one dataset per score field."""
    for field, values in scores.items():
        _write_region(path, f"{SCORE_GROUP}/{field}", index, values)


def mark_complete(path: Path, index: int, seconds: float) -> None:
    """Records an initialisation as done: the last write of its forecast."""
    status = xr.Dataset(
        {
            "complete": (("time",), np.ones(1, np.int8)),
            "forecast_seconds": (("time",), np.asarray([seconds], np.float64)),
        }
    )
    _write_region(path, GROUP, index, status)


def _write_region(path: Path, group: Optional[str], index: int, values: xr.Dataset) -> None:
    # Only the variables along `time` go into a region; the coordinates are already there.
    values = values.drop_vars(list(values.coords))
    with quiet_zarr():
        values.to_zarr(
            path, group=group, region={"time": slice(index, index + 1)}, mode="r+",
            consolidated=False,
        )  # fmt: skip


def open_group(path, group: str) -> xr.Dataset:
    """One group of the store (or of any Zarr store), lazily and without Dask."""
    with quiet_zarr():
        return xr.open_zarr(
            path, group=group, consolidated=False, chunks=None, decode_timedelta=True
        )


def read_status(path: Path) -> xr.Dataset:
    """``complete`` and ``forecast_seconds`` per initialisation."""
    return open_group(path, GROUP).load()


def completed(path: Path) -> np.ndarray:
    """Which initialisations are done: [time] bool."""
    return read_status(path)["complete"].values.astype(bool)


def read_scores(path: Path) -> dict[str, xr.Dataset]:
    """Every score field, loaded (NaN for forecasts not done), variables in name order."""
    fields = {}
    for field in SCORE_FIELDS:
        values = open_group(path, f"{SCORE_GROUP}/{field}").load()
        fields[field] = values[sorted(values.data_vars)]
    return fields


def open_forecasts(path: Path) -> xr.Dataset:
    """The forecasts, lazily (without Dask), as a WeatherBench2 reader opens them."""
    with quiet_zarr():
        return xr.open_zarr(path, consolidated=True, chunks=None, decode_timedelta=True)
