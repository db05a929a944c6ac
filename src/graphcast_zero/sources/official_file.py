"""The official-layout NetCDF file every converting source writes, one field at a time.

:func:`create_official_file` writes the coordinates, the attributes and every variable empty;
the source then fills the fields it has (:func:`put_field`) as it reads them, so memory holds a
few fields and never the dataset, and :func:`put_computed_solar` adds the TOA incident solar
radiation it lacks. Each variable is chunked by frame with a NaN fill value: a frame never
written (a target past the end of the data) takes no disk and reads as NaN, which is how a
forecast-only dataset says "no target here".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero import solar
from graphcast_zero.config import (
    ATMOSPHERIC_VARIABLES,
    PRECIPITATION,
    STATIC_VARIABLES,
    STEP,
    SURFACE_FIELDS,
    TOA_RADIATION,
)

INPUT_FRAMES = 2  # t0-6h and t0, as every published model reads


@dataclasses.dataclass(frozen=True)
class DatasetRequest:
    """The dataset wanted: frames ``init - 6h``, ``init`` and ``steps`` targets on a grid.

    Attributes:
      init: the initialisation time t0 (the last input frame).
      steps: 6-hour target frames after t0.
      resolution: grid spacing in degrees; the points are -90…90 and 0…360-Δ.
      levels: the pressure levels in hPa.
      source: the file name's source: ``era5``, or ``hres`` for IFS analyses.
    """

    init: pd.Timestamp
    steps: int
    resolution: float
    levels: tuple[int, ...]
    source: str = "era5"

    def frame_times(self) -> pd.DatetimeIndex:
        first = self.init - (INPUT_FRAMES - 1) * STEP
        return pd.date_range(first, periods=INPUT_FRAMES + self.steps, freq=STEP)

    def lat(self) -> np.ndarray:
        return official_grid(self.resolution)[0]

    def lon(self) -> np.ndarray:
        return official_grid(self.resolution)[1]

    def file_name(self) -> str:
        """The bucket's naming pattern, with the first frame's hour after its date."""
        first = self.frame_times()[0]
        return (
            f"source-{self.source}_date-{first:%Y-%m-%dT%H}_res-{float(self.resolution)}"
            f"_levels-{len(self.levels)}_steps-{self.steps:02d}.nc"
        )


def official_grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes −90…90 (poles included) and longitudes 0…360−Δ, in degrees, as the bucket's
    files have them; ``resolution`` divides 180° (callers check, each with its own message)."""
    count = round(180 / resolution)
    return np.linspace(-90, 90, count + 1), np.arange(2 * count) * float(resolution)


# Official variable order, as in DeepMind's example files.
VARIABLE_ORDER = (
    *STATIC_VARIABLES, *SURFACE_FIELDS, PRECIPITATION,
    TOA_RADIATION, *ATMOSPHERIC_VARIABLES,
)  # fmt: skip


def official_dims(name: str) -> tuple[str, ...]:
    """The dimensions of an official variable."""
    if name in STATIC_VARIABLES:
        return ("lat", "lon")
    if name in ATMOSPHERIC_VARIABLES:
        return ("batch", "time", "level", "lat", "lon")
    return ("batch", "time", "lat", "lon")


def official_skeleton(
    frames: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    attrs: dict,
) -> xr.Dataset:
    """The official layout's coordinates and attributes, without variables.

    Args:
      frames: the valid time of each frame.
      lat, lon: the grid in degrees, latitudes ascending.
      levels: the pressure levels in hPa.
      attrs: the dataset's attributes.
    """
    offsets = (frames - frames[0]).values  # [time] timedelta64
    return xr.Dataset(
        coords={
            "lat": np.asarray(lat, np.float32),
            "lon": np.asarray(lon, np.float32),
            "level": np.asarray(levels, np.int32),
            "time": offsets,
            "datetime": (("batch", "time"), frames.values[None]),
        },
        attrs=attrs,
    )


def create_official_file(
    path: Path,
    frames: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    levels: Sequence[int],
    attrs: dict,
) -> None:
    """Writes the empty file: coordinates and attributes with xarray (it encodes the times), the
    variables with netCDF4, every one NaN until written.

    Args:
      path: the file to create (a temporary name: the caller renames it when complete).
      frames, lat, lon, levels, attrs: as :func:`official_skeleton` takes them.
    """
    import netCDF4

    encoding = {
        "time": {"units": "hours", "dtype": "int64"},
        "datetime": {"units": f"hours since {frames[0]:%Y-%m-%d %H:%M:%S}", "dtype": "int64"},
    }
    skeleton = official_skeleton(frames, lat, lon, levels, attrs)
    skeleton.to_netcdf(path, encoding=encoding, engine="netcdf4")
    with netCDF4.Dataset(path, "a") as out:
        for name in VARIABLE_ORDER:
            dims = official_dims(name)
            sizes = [len(out.dimensions[d]) for d in dims]
            # One chunk per frame: frames never written (no data) allocate nothing.
            chunks = [1 if d in ("batch", "time") else n for d, n in zip(dims, sizes, strict=True)]
            out.createVariable(name, "f4", dims, fill_value=np.float32(np.nan), chunksizes=chunks)


def put_field(
    out, name: str, values: np.ndarray, frame: Optional[int] = None, level: Optional[int] = None
) -> None:
    """Writes one field into an open netCDF4 file (or a mapping of arrays in the same layout): a
    static (``frame`` None), a frame of a variable, or one level (an index into the file's levels)
    of a frame."""
    if frame is None:
        out[name][:] = values
    elif level is None:
        out[name][0, frame] = values
    else:
        out[name][0, frame, level] = values


def put_computed_solar(
    out, frames: pd.DatetimeIndex, which: Sequence[int], lat: np.ndarray, lon: np.ndarray
) -> None:
    """TISR computed (:mod:`graphcast_zero.solar`) for the frames ``which`` of the file."""
    which = list(which)
    if not which:
        return
    values = solar.toa_incident_solar_radiation(frames[which].values, lat, lon)  # [T, lat, lon]
    for frame, field in zip(which, values, strict=True):
        out[TOA_RADIATION][0, frame] = field
