"""A latitude/longitude box to zoom maps into: ``--region lat0,lat1,lon0,lon1``.

Longitudes may be given either way round the globe (-30,40 for Europe, 230,300 for North America
in 0…360): the box runs east from ``lon0`` to ``lon1``, so it may cross the 0° or 180° meridian,
and the cut field's longitudes run continuously from ``lon0`` (-30 … 40, not 330 … 40).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero.errors import InputError

EXAMPLE = "35,72,-25,45"  # Europe


@dataclasses.dataclass(frozen=True)
class Region:
    """A box: latitudes ``lat0`` … ``lat1`` (south to north), longitudes ``lon0`` east to ``lon1``."""

    lat0: float
    lat1: float
    lon0: float
    lon1: float

    def describe(self) -> str:
        return f"{self.lat0:g}…{self.lat1:g}°N, {self.lon0:g}…{self.lon1:g}°E"


def parse_region(text: Optional[str]) -> Optional[Region]:
    """``lat0,lat1,lon0,lon1`` in degrees; None for no text (the whole globe).

    Raises:
      InputError: not four numbers, latitudes outside -90…90 or not south < north, longitudes
        outside -180…360, or not west < east within one turn.
    """
    if text is None or str(text).strip() == "":
        return None
    parts = str(text).replace(" ", "").split(",")
    try:
        lat0, lat1, lon0, lon1 = (float(part) for part in parts)
    except ValueError:
        lat0 = None
    if lat0 is None or not np.isfinite([lat0, lat1, lon0, lon1]).all():
        problem = "is not four numbers"
    elif not -90 <= lat0 < lat1 <= 90:
        problem = "needs -90 ≤ lat0 < lat1 ≤ 90"
    elif not (-180 <= lon0 < lon1 <= 360 and lon1 - lon0 <= 360):
        problem = "needs -180 ≤ lon0 < lon1 ≤ 360, at most 360° apart"
    else:
        return Region(lat0, lat1, lon0, lon1)
    raise InputError(
        f"--region {text!r} {problem}: give lat0,lat1,lon0,lon1 in degrees, e.g. {EXAMPLE} (Europe)"
    )


def cut(field: xr.DataArray, region: Optional[Region], text: str = "") -> xr.DataArray:
    """The part of a field on (…, lat, lon) inside the region, longitudes continuous from lon0.

    Raises:
      InputError: the region holds fewer than two grid points along latitude or longitude.
    """
    if region is None:
        return field
    lat = field["lat"].values
    inside_lat = (lat >= region.lat0 - 1e-6) & (lat <= region.lat1 + 1e-6)
    east = np.mod(field["lon"].values - region.lon0, 360.0)  # [lon], degrees east of lon0
    inside_lon = east <= region.lon1 - region.lon0 + 1e-6
    for axis, count in (("latitude", inside_lat.sum()), ("longitude", inside_lon.sum())):
        if count < 2:
            raise InputError(
                f"--region {text or region.describe()} holds {count} grid point(s) along "
                f"{axis} on this grid: widen it"
            )
    order = np.flatnonzero(inside_lon)[np.argsort(east[inside_lon], kind="stable")]
    zoomed = field.isel(lat=np.flatnonzero(inside_lat), lon=order)
    return zoomed.assign_coords(lon=region.lon0 + east[order])
