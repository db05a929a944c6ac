"""How the public ERA5 Zarr stores lay out their data, and the checks that a store does so.

Each known store is one frozen :class:`StoreLayout`: variable and dimension names, the order of
the dimensions and of the latitudes, the time step, the level count, how precipitation and solar
radiation are accumulated, and whether the static fields carry a time dimension. ARCO-ERA5
(hourly, 37 levels) and WeatherBench2's ERA5 (6-hourly, 13 levels) are described here; any other
store is matched to the layout it follows by :func:`detect_layout`. :func:`check_layout` compares a
store's own metadata with its layout, so a store that changed fails with one line, not with wrong
data.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.config import (
    ATMOSPHERIC_VARIABLES,
    STATIC_VARIABLES,
    SURFACE_FIELDS,
    TOA_RADIATION,
)
from graphcast_zero.errors import InputError


@dataclasses.dataclass(frozen=True)
class StoreLayout:
    """The conventions of one family of ERA5 stores.

    Attributes:
      key: the short name used by ``--store`` (``arco``, ``wb2``).
      title: a name for messages.
      url: where the public store lives (None for a layout detected in another store).
      time_step: the spacing of the ``time`` coordinate.
      levels: how many pressure levels the store holds (None: any).
      precipitation: the precipitation variable's name.
      precipitation_period: the span its values accumulate over, ending at the valid time.
      solar: the name of the hourly TOA incident solar radiation accumulation, or None when the
        store has none (it is then computed).
      statics_have_time: whether the static fields carry a ``time`` dimension.
      latitude_descending: True when latitudes run 90 → -90, False for -90 → 90, None for either.
      valid_range_attrs: the store attributes giving the first valid date, the last final one
        and the last preliminary (ERA5T) one; None when the ``time`` coordinate is the range.
    """

    key: str
    title: str
    url: Optional[str]
    time_step: pd.Timedelta
    levels: Optional[int]
    precipitation: str
    precipitation_period: pd.Timedelta
    solar: Optional[str]
    statics_have_time: bool
    latitude_descending: Optional[bool]
    valid_range_attrs: Optional[tuple[str, str, str]] = None
    dims: tuple[str, str, str, str] = ("time", "level", "latitude", "longitude")

    @property
    def time_dim(self) -> str:
        return self.dims[0]

    @property
    def level_dim(self) -> str:
        return self.dims[1]

    @property
    def lat_dim(self) -> str:
        return self.dims[2]

    @property
    def lon_dim(self) -> str:
        return self.dims[3]

    def variables(self) -> tuple[str, ...]:
        """Every variable a GraphCast dataset is built from, under this layout's names."""
        solar = (self.solar,) if self.solar else ()
        return (
            *STATIC_VARIABLES, *SURFACE_FIELDS, self.precipitation, *solar, *ATMOSPHERIC_VARIABLES,
        )  # fmt: skip

    def dims_of(self, name: str) -> tuple[str, ...]:
        """The dimensions ``name`` has in a store of this layout."""
        time, level, lat, lon = self.dims
        if name in ATMOSPHERIC_VARIABLES:
            return (time, level, lat, lon)
        if name in STATIC_VARIABLES and not self.statics_have_time:
            return (lat, lon)
        return (time, lat, lon)


ARCO = StoreLayout(
    key="arco",
    title="ARCO-ERA5",
    url="gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3",
    time_step=pd.Timedelta(hours=1),
    levels=37,
    precipitation="total_precipitation",
    precipitation_period=pd.Timedelta(hours=1),
    solar=TOA_RADIATION,
    statics_have_time=True,
    latitude_descending=True,
    valid_range_attrs=("valid_time_start", "valid_time_stop", "valid_time_stop_era5t"),
)
WEATHERBENCH2 = StoreLayout(
    key="wb2",
    title="WeatherBench2 ERA5",
    url=(
        "gs://weatherbench2/datasets/era5/"
        "1959-2023_01_10-wb13-6h-1440x721_with_derived_variables.zarr"
    ),
    time_step=pd.Timedelta(hours=6),
    levels=13,
    precipitation="total_precipitation_6hr",
    precipitation_period=pd.Timedelta(hours=6),
    solar=None,
    statics_have_time=False,
    latitude_descending=None,
)
KNOWN_LAYOUTS = {layout.key: layout for layout in (ARCO, WEATHERBENCH2)}


def time_step_of(store: xr.Dataset, layout: StoreLayout) -> Optional[pd.Timedelta]:
    """The spacing of the store's first two times, or None for a store with fewer than two."""
    times = store[layout.time_dim].values[:2]
    return pd.Timedelta(times[1] - times[0]) if len(times) == 2 else None


def detect_layout(store: xr.Dataset, where: str) -> StoreLayout:
    """The known layout a store follows, recognised by its precipitation variable and time step.

    A known store is returned as it is described; another store in the same layout gets a copy
    without the public store's address and with any level count.

    Raises:
      InputError: the store follows neither layout.
    """
    for layout in KNOWN_LAYOUTS.values():
        if layout.precipitation in store and layout.time_dim in store.dims:
            if time_step_of(store, layout) == layout.time_step:
                if layout.url and where.rstrip("/") == layout.url:
                    return layout
                return dataclasses.replace(layout, key="custom", url=None, levels=None)
    raise InputError(
        f"store {where} follows neither the ARCO-ERA5 layout (hourly, total_precipitation) nor "
        "WeatherBench2's (6-hourly, total_precipitation_6hr): convert it to one of them, or pass "
        "--store arco or --store wb2"
    )


def check_layout(store: xr.Dataset, layout: StoreLayout, where: str) -> None:
    """The store's metadata agrees with its layout: names, dims, coordinate order, time step,
    level count, one time step per chunk.

    Raises:
      InputError: naming the first fact that does not hold.
    """
    problem = _layout_problem(store, layout)
    if problem:
        raise InputError(
            f"store {where} does not follow the {layout.title} layout: {problem}; point --store "
            "at a store in that layout"
        )


def _layout_problem(store: xr.Dataset, layout: StoreLayout) -> Optional[str]:
    for name in layout.variables():
        if name in store and tuple(store[name].dims) != layout.dims_of(name):
            return f"{name} has dims {tuple(store[name].dims)}, not {layout.dims_of(name)}"
        chunks = store[name].encoding.get("chunks") if name in store else None
        if chunks and layout.time_dim in store[name].dims and chunks[0] != 1:
            return f"{name} holds {chunks[0]} time steps per chunk, not 1"
    step = time_step_of(store, layout)
    if step is not None and step != layout.time_step:
        return f"its time step is {step}, not {layout.time_step}"
    levels = store.sizes.get(layout.level_dim)
    if layout.levels is not None and levels != layout.levels:
        return f"it has {levels} levels, not {layout.levels}"
    return _grid_problem(store, layout)


def _grid_problem(store: xr.Dataset, layout: StoreLayout) -> Optional[str]:
    lat = np.asarray(store[layout.lat_dim].values, np.float64)
    lon = np.asarray(store[layout.lon_dim].values, np.float64)
    descending = bool(lat[0] > lat[-1])
    if layout.latitude_descending is not None and descending != layout.latitude_descending:
        order = "90 → -90" if layout.latitude_descending else "-90 → 90"
        return f"its latitudes run {lat[0]:g} → {lat[-1]:g}, not {order}"
    if abs(abs(lat[0]) - 90) > 1e-6 or abs(lat[0] + lat[-1]) > 1e-6:
        return f"its latitudes run {lat[0]:g} → {lat[-1]:g}, not pole to pole"
    if abs(lon[0]) > 1e-6 or lon[-1] >= 360 or np.any(np.diff(lon) <= 0):
        return f"its longitudes run {lon[0]:g} → {lon[-1]:g}, not 0 → 360 ascending"
    return None


def valid_range(store: xr.Dataset, layout: StoreLayout) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last times holding data (ERA5T included).

    ARCO's ``time`` axis runs far past its data; its attributes give the valid dates, each stop
    date covering that whole day. Other stores hold data for every time of their axis.
    """
    times = store[layout.time_dim].values
    first, last = pd.Timestamp(times[0]), pd.Timestamp(times[-1])
    if layout.valid_range_attrs is None:
        return first, last
    start_key, stop_key, era5t_key = layout.valid_range_attrs
    attrs = store.attrs
    start = _attr_time(attrs.get(start_key), first, end_of_day=False)
    stop = _attr_time(attrs.get(era5t_key, attrs.get(stop_key)), last, end_of_day=True)
    return max(start, first), min(stop, last)


def _attr_time(text, default: pd.Timestamp, *, end_of_day: bool) -> pd.Timestamp:
    """A date or time attribute; a bare date that ends a range covers that whole day."""
    if not text:
        return default
    stamp = pd.Timestamp(str(text))
    is_date = len(str(text).strip()) == 10
    return stamp + pd.Timedelta(hours=23) if end_of_day and is_date else stamp


def zarr_format_options() -> dict:
    """``to_zarr`` options for Zarr format 2, the format of the public stores (zarr 3 writes
    format 3 unless told)."""
    import zarr

    return {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}
