"""What to read from an ERA5 store for one GraphCast dataset, and how many bytes that is.

:func:`plan_conversion` turns a request (initialisation time, steps, grid, levels) into a
:class:`ConversionPlan`: the store indices of the model's grid points (latitudes flipped to
ascending), levels and times, and one :class:`Field` per output variable and frame listing the
store selections it is made of (six hourly precipitation accumulations summed into a 6-hour one,
for instance). Everything is decided from metadata, so the bytes to read are known, and shown,
before any is read. The definitions follow DeepMind's example datasets: the grid is a selection of
the store's points (never regridded), ``total_precipitation_6hr`` at t is the accumulation over
t-6h … t, TISR is the store's where it has one and computed elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.config import (
    ATMOSPHERIC_VARIABLES,
    PRECIPITATION,
    STATIC_VARIABLES,
    STEP,
    TOA_RADIATION,
)
from graphcast_zero.errors import InputError
from graphcast_zero.sources.layouts import SURFACE_FIELDS, StoreLayout, valid_range
from graphcast_zero.sources.official_file import DatasetRequest, official_grid

Era5Request = DatasetRequest  # the init time, steps, grid and levels of an ERA5 dataset


@dataclasses.dataclass(frozen=True)
class Read:
    """One selection of a store variable: a time index (None for a field without time)."""

    variable: str
    time_index: Optional[int]


@dataclasses.dataclass(frozen=True)
class Field:
    """One output field: an official variable at a frame (None: static), the sum of its reads."""

    name: str
    frame: Optional[int]
    reads: tuple[Read, ...]


@dataclasses.dataclass(frozen=True)
class ConversionPlan:
    """Everything needed to build the dataset, decided before any value is read.

    Attributes:
      uri: the store.
      layout: its layout.
      request: what is built.
      lat_index, lon_index, level_index: store indices, in output order (latitude ascending).
      fields: the fields read from the store.
      frames_with_data: how many leading frames the store covers; later ones hold no targets.
      computed_solar_frames: frames whose TISR is computed rather than read.
      chunk_bytes: the bytes of every store chunk the reads touch (each counted once).
    """

    uri: str
    layout: StoreLayout
    request: Era5Request
    lat_index: np.ndarray
    lon_index: np.ndarray
    level_index: np.ndarray
    fields: tuple[Field, ...]
    frames_with_data: int
    computed_solar_frames: tuple[int, ...]
    chunk_bytes: int

    def output_bytes(self) -> int:
        """Size of the dataset written (float32; frames without data take no space)."""
        points = self.lat_index.size * self.lon_index.size
        levels = self.level_index.size
        values = sum(levels if f.name in ATMOSPHERIC_VARIABLES else 1 for f in self.fields)
        return 4 * points * (values + len(self.computed_solar_frames))


def plan_conversion(
    store: xr.Dataset, layout: StoreLayout, uri: str, request: Era5Request
) -> ConversionPlan:
    """Plans the reads that build ``request`` from ``store``.

    Raises:
      InputError: the init time is off the store's time grid or its inputs outside the store's
        range; the store lacks a variable, a level or a grid point of the model.
    """
    times = _time_indexer(store, layout, uri, request)
    lat_index, lon_index = grid_indices(store, layout, uri, request.resolution)
    level_index = _level_indices(store, layout, uri, request.levels)
    has_solar = bool(layout.solar) and layout.solar in store
    missing = [name for name in layout.variables() if name not in store and name != layout.solar]
    if missing:
        raise InputError(
            f"store {uri} lacks {', '.join(missing)}: point --store at a complete ERA5 store"
        )
    frames = request.frame_times()
    with_data = times.frames_with_data(frames)
    fields = [Field(name, None, (Read(name, times.static_index()),)) for name in STATIC_VARIABLES]
    for frame, when in enumerate(frames[:with_data]):
        for name in (*SURFACE_FIELDS, *ATMOSPHERIC_VARIABLES):
            fields.append(Field(name, frame, (Read(name, times.index(when)),)))
        accumulation = times.accumulation_reads(layout.precipitation, when)
        fields.append(Field(PRECIPITATION, frame, accumulation))
        if has_solar:
            fields.append(Field(TOA_RADIATION, frame, (Read(layout.solar, times.index(when)),)))
    computed = tuple(range(with_data if has_solar else 0, len(frames)))
    indices = {layout.level_dim: level_index, layout.lat_dim: lat_index, layout.lon_dim: lon_index}
    return ConversionPlan(
        uri=uri, layout=layout, request=request, lat_index=lat_index, lon_index=lon_index,
        level_index=level_index, fields=tuple(fields), frames_with_data=with_data,
        computed_solar_frames=computed, chunk_bytes=chunk_bytes(store, layout, fields, indices),
    )  # fmt: skip


class _TimeIndexer:
    """Store time indices of valid times, and the store's valid range."""

    def __init__(self, store: xr.Dataset, layout: StoreLayout, uri: str):
        self.layout, self.uri = layout, uri
        self.first = pd.Timestamp(store[layout.time_dim].values[0])
        self.count = store.sizes[layout.time_dim]
        self.start, self.stop = valid_range(store, layout)

    def index(self, when: pd.Timestamp) -> int:
        return int((when - self.first) / self.layout.time_step)

    def static_index(self) -> Optional[int]:
        return self.index(self.start) if self.layout.statics_have_time else None

    def accumulation_reads(self, name: str, when: pd.Timestamp) -> tuple[Read, ...]:
        """The reads whose sum accumulates ``name`` over the 6 hours ending at ``when``."""
        period = self.layout.precipitation_period
        count = int(STEP / period)
        return tuple(Read(name, self.index(when - k * period)) for k in range(count))

    def frames_with_data(self, frames: pd.DatetimeIndex) -> int:
        return int(np.count_nonzero(frames <= self.stop))


def _time_indexer(
    store: xr.Dataset, layout: StoreLayout, uri: str, request: Era5Request
) -> _TimeIndexer:
    """Checks the init time against the store's time grid and range."""
    times = _TimeIndexer(store, layout, uri)
    init = request.init
    if (init - times.first) % layout.time_step or init.second or init.microsecond:
        raise InputError(
            f"--init {init:%Y-%m-%dT%H:%M} is not on the {layout.title} store's "
            f"{_hours(layout.time_step)} grid: use a time such as {init:%Y-%m-%dT}00"
        )
    earliest = request.frame_times()[0] - STEP + layout.precipitation_period
    if earliest < times.start or init > times.stop:
        raise InputError(
            f"--init {init:%Y-%m-%dT%H} is outside the {layout.title} store's range "
            f"{times.start:%Y-%m-%dT%H} … {times.stop:%Y-%m-%dT%H} (the inputs need "
            f"{earliest:%Y-%m-%dT%H} … {init:%Y-%m-%dT%H}): choose an --init in it, or "
            "--init latest"
        )
    return times


def _hours(step: pd.Timedelta) -> str:
    return f"{int(step / pd.Timedelta(hours=1))}-hour"


def latest_init(store: xr.Dataset, layout: StoreLayout) -> pd.Timestamp:
    """The newest time the store holds on its own time grid: ``--init latest``."""
    return valid_range(store, layout)[1].floor(layout.time_step)


def grid_indices(
    store: xr.Dataset, layout: StoreLayout, uri: str, resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """Store indices of the model grid's latitudes (-90 → 90) and longitudes (0 → 360-Δ).

    Raises:
      InputError: the resolution does not divide 180°, or the store lacks one of the points.
    """
    return model_grid_indices(
        store[layout.lat_dim].values, store[layout.lon_dim].values, resolution, f"store {uri}"
    )


def model_grid_indices(
    lat: np.ndarray, lon: np.ndarray, resolution: float, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a source's latitudes and longitudes of the model grid's points: latitudes
    -90 → 90, longitudes 0 → 360-Δ (the source's longitudes are taken modulo 360).

    Raises:
      InputError: the resolution does not divide 180°, or ``where`` (the source, for the
        message) lacks one of the points.
    """
    count = 180 / resolution
    if resolution <= 0 or abs(count - round(count)) > 1e-9:
        raise InputError(f"--resolution {resolution:g} must divide 180°, e.g. 0.25, 1.0 or 4.0")
    wanted_lat, wanted_lon = official_grid(resolution)
    found = []
    for dim, have, wanted in (
        ("latitude", np.asarray(lat, np.float64), wanted_lat),
        ("longitude", np.mod(np.asarray(lon, np.float64), 360), wanted_lon),
    ):
        nearest = _nearest(have, wanted)
        off = np.abs(have[nearest] - wanted) > 1e-4
        if off.any():
            spacing = abs(float(have[1] - have[0]))
            raise InputError(
                f"{where} has no grid point at {dim} {wanted[off][0]:g} (its spacing is "
                f"{spacing:g}°): choose a --resolution that is a multiple of {spacing:g}"
            )
        found.append(nearest)
    return found[0], found[1]


def _nearest(have: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of the nearest value of a monotonic coordinate, for each wanted value."""
    order = np.argsort(have)
    position = np.clip(np.searchsorted(have[order], wanted), 1, have.size - 1)
    left, right = order[position - 1], order[position]
    return np.where(np.abs(have[left] - wanted) <= np.abs(have[right] - wanted), left, right)


def _level_indices(
    store: xr.Dataset, layout: StoreLayout, uri: str, levels: tuple[int, ...]
) -> np.ndarray:
    have = [int(v) for v in store[layout.level_dim].values]
    missing = [level for level in levels if level not in have]
    if missing:
        raise InputError(
            f"store {uri} lacks pressure levels {missing}: use --levels {len(have)} or a store "
            "with all 37 levels (--store arco)"
        )
    return np.asarray([have.index(level) for level in levels])


def chunk_bytes(
    store: xr.Dataset, layout: StoreLayout, fields, indices: dict[str, np.ndarray]
) -> int:
    """Bytes of the store chunks that the fields' reads touch, each chunk counted once.

    Chunk shapes come from the store's metadata; a store without chunks (NetCDF) counts the
    bytes of the selection itself.
    """
    seen: set[tuple] = set()
    total = 0
    for read in {read for f in fields for read in f.reads}:
        variable = store[read.variable]
        chunks = variable.encoding.get("chunks") or variable.encoding.get("preferred_chunks")
        if isinstance(chunks, dict):
            chunks = tuple(chunks.get(dim, size) for dim, size in variable.sizes.items())
        chunks = chunks or tuple(1 for _ in variable.dims)
        keys = []
        for dim, size, chunk in zip(variable.dims, variable.shape, chunks, strict=True):
            chosen = [read.time_index] if dim == layout.time_dim else indices.get(dim, range(size))
            keys.append(sorted({int(i) // chunk for i in chosen}))
        count = int(np.prod([len(k) for k in keys]))
        key = (read.variable, read.time_index // chunks[0] if read.time_index is not None else None)
        if key in seen:
            continue
        seen.add(key)
        total += count * int(np.prod(chunks)) * variable.dtype.itemsize
    return total
