"""Reading the open data's GRIB2 files with ecCodes: one field at a time, on a checked grid.

:func:`read_fields` yields each message of a file as a :class:`GribField`: its parameter, level
type, level, run time, step, grid and values on ``[latitude, longitude]`` in the file's order.
Only regular latitude/longitude grids are read (the open data's); the coordinates come from the
message's own grid description, so a grid running 90 → -90 and -180 → 180 (the open data's) and
one running -90 → 90 and 0 → 360 read alike. A damaged file (a message cut short) is a one-line
error naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from graphcast_zero.errors import InputError


@dataclasses.dataclass(frozen=True)
class GribGrid:
    """A regular latitude/longitude grid as a message describes it.

    Attributes:
      lat: the latitudes of the rows, in the message's order, degrees.
      lon: the longitudes of the columns, in the message's order, degrees in [0, 360).
    """

    lat: np.ndarray
    lon: np.ndarray

    def same_as(self, other: GribGrid) -> bool:
        return (
            self.lat.shape == other.lat.shape
            and self.lon.shape == other.lon.shape
            and bool(np.allclose(self.lat, other.lat) and np.allclose(self.lon, other.lon))
        )

    def describe(self) -> str:
        return (
            f"{self.lon.size}×{self.lat.size} grid from ({self.lat[0]:g}°N, {self.lon[0]:g}°E) "
            f"to ({self.lat[-1]:g}°N, {self.lon[-1]:g}°E)"
        )


@dataclasses.dataclass(frozen=True)
class GribField:
    """One GRIB message, decoded.

    Attributes:
      param: ecCodes' short name (``2t``, ``gh``, ``lsm`` …).
      levtype: ``sfc`` or ``pl``.
      level: the pressure level in hPa (None for single-level fields).
      run: the run's date and time.
      step: the forecast step in hours.
      grid: the grid the values lie on.
      values: the field, ``[len(grid.lat), len(grid.lon)]``, float64, NaN where missing.
    """

    param: str
    levtype: str
    level: Optional[int]
    run: pd.Timestamp
    step: int
    grid: GribGrid
    values: np.ndarray

    def describe(self) -> str:
        level = f" at {self.level} hPa" if self.level is not None else ""
        return f"{self.param}{level} (run {self.run:%Y-%m-%dT%H}, step {self.step} h)"


def read_fields(path: Path) -> Iterator[GribField]:
    """Yields every message of a GRIB file, decoded.

    Raises:
      InputError: the file is damaged (a message cut short or unreadable), or a message is on
        a grid other than a regular latitude/longitude one.
    """
    import eccodes

    with open(path, "rb") as handle:
        while True:
            try:
                message = eccodes.codes_grib_new_from_file(handle)
            except Exception as error:  # ecCodes raises its own classes for each damage
                raise _damaged(path, error) from None
            if message is None:
                return
            try:
                yield _decode(message, path)
            except eccodes.CodesInternalError as error:
                raise _damaged(path, error) from None
            finally:
                eccodes.codes_release(message)


def _damaged(path: Path, error: Exception) -> InputError:
    return InputError(
        f"{path.name} is damaged ({type(error).__name__}: a GRIB message cut short or "
        "unreadable): run fetch-data again, or try another --mirror"
    )


def _decode(message, path: Path) -> GribField:
    import eccodes

    get = lambda key: eccodes.codes_get(message, key)  # noqa: E731
    param = str(get("shortName"))
    grid_type = str(get("gridType"))
    if grid_type != "regular_ll":
        raise InputError(
            f"{path.name}: {param} is on a {grid_type} grid, not a regular latitude/longitude "
            "one: this is not the open data's 0.25° layout; try another --mirror"
        )
    levtype = str(get("levtype"))
    date, hhmm = int(get("dataDate")), int(get("dataTime"))
    run = pd.Timestamp(f"{date:08d}") + pd.Timedelta(hours=hhmm // 100, minutes=hhmm % 100)
    grid = _grid(get)
    values = np.asarray(eccodes.codes_get_values(message), np.float64)
    if int(get("bitmapPresent")):
        values[values == float(get("missingValue"))] = np.nan
    if int(get("jPointsAreConsecutive")):  # columns stored one after another
        values = values.reshape(grid.lon.size, grid.lat.size).T
    else:
        values = values.reshape(grid.lat.size, grid.lon.size)
    return GribField(
        param=param,
        levtype=levtype,
        level=int(get("level")) if levtype == "pl" else None,
        run=run,
        step=int(get("endStep")),
        grid=grid,
        values=values,
    )


def _grid(get) -> GribGrid:
    """Row latitudes and column longitudes from the message's grid description."""
    ni, nj = int(get("Ni")), int(get("Nj"))
    lat = np.linspace(
        float(get("latitudeOfFirstGridPointInDegrees")),
        float(get("latitudeOfLastGridPointInDegrees")),
        nj,
    )
    step = float(get("iDirectionIncrementInDegrees"))
    sign = -1.0 if int(get("iScansNegatively")) else 1.0
    first = float(get("longitudeOfFirstGridPointInDegrees"))
    lon = np.mod(first + sign * step * np.arange(ni), 360.0)
    return GribGrid(lat, lon)
