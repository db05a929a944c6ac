"""Carrying out a :class:`~graphcast_zero.sources.era5_plan.ConversionPlan`: read, convert, write.

The fields are read in parallel (each read selects one time of one variable, which in the public
stores is exactly one chunk), each with a few tries against transient network errors, and written
one by one into a NetCDF file in the official layout as they arrive, so memory holds a few fields
and never the dataset. The file is chunked by frame: frames past the store's end take no disk and
read as NaN ("no target"). It is written under a hidden temporary name and renamed when complete.
:func:`read_dataset` builds the same dataset in memory instead, for training windows
(:mod:`~graphcast_zero.sources.era5_windows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import xarray as xr

from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import FetchError
from graphcast_zero.sources.era5_plan import ConversionPlan, Field
from graphcast_zero.sources.official_file import (
    VARIABLE_ORDER,
    create_official_file,
    official_dims,
    official_skeleton,
    put_computed_solar,
    put_field,
)

TRIES = 3
RETRY_WAIT_S = 1.0


def convert(
    store: xr.Dataset,
    plan: ConversionPlan,
    destination: Path,
    *,
    workers: int = 8,
    progress: bool = True,
    tries: int = TRIES,
) -> Path:
    """Builds the planned dataset from ``store`` into ``destination`` (atomically).

    Raises:
      FetchError: a read still failed after ``tries`` tries; nothing is left behind.
    """
    from tqdm.auto import tqdm

    bar = tqdm(
        total=plan.chunk_bytes, unit="B", unit_scale=True, unit_divisor=1024,
        desc=destination.name[:40], disable=not progress,
    )  # fmt: skip
    shares = _byte_shares(plan)
    with atomic_path(destination) as partial:
        _write_skeleton(plan, partial)
        import netCDF4

        with netCDF4.Dataset(partial, "a") as out:
            for field, values in _read_all(store, plan, workers, tries):
                put_field(out, field.name, values, field.frame)
                bar.update(shares[field])
            frames = plan.request.frame_times()
            put_computed_solar(
                out, frames, plan.computed_solar_frames, plan.request.lat(), plan.request.lon()
            )
        bar.close()
    return destination


def read_dataset(
    store: xr.Dataset, plan: ConversionPlan, *, workers: int = 1, tries: int = TRIES
) -> xr.Dataset:
    """The planned dataset in memory, in the official layout: what ``convert`` writes.

    Training windows read their fields one by one (``workers=1``), in a loader's background
    thread (the loader reads several windows at once, so one window needs no pool of its own);
    a hindcast worker reads one window at a time, ``workers`` fields at once.

    Raises:
      FetchError: a read still failed after ``tries`` tries.
    """
    request = plan.request
    frames, lat, lon = request.frame_times(), request.lat(), request.lon()
    skeleton = official_skeleton(frames, lat, lon, request.levels, _attrs(plan))
    sizes = {"batch": 1, **{dim: skeleton.sizes[dim] for dim in ("time", "level", "lat", "lon")}}
    out = {
        name: np.full([sizes[d] for d in official_dims(name)], np.nan, np.float32)
        for name in VARIABLE_ORDER
    }
    reads = (
        _read_all(store, plan, workers, tries)
        if workers > 1
        else (_read_field(store, plan, field, tries) for field in plan.fields)
    )
    for field, values in reads:
        put_field(out, field.name, values, field.frame)
    put_computed_solar(out, frames, plan.computed_solar_frames, lat, lon)
    return skeleton.assign({name: (official_dims(name), out[name]) for name in VARIABLE_ORDER})


def _byte_shares(plan: ConversionPlan) -> dict[Field, float]:
    """Each field's share of the planned chunk bytes, for the progress bar."""
    reads = sum(len(field.reads) for field in plan.fields) or 1
    return {field: plan.chunk_bytes * len(field.reads) / reads for field in plan.fields}


def _read_all(store: xr.Dataset, plan: ConversionPlan, workers: int, tries: int):
    """Yields (field, values) as reads complete; at most ``2 * workers`` fields in memory."""
    pending: set[Future] = set()
    todo = iter(plan.fields)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            while True:
                for field in todo:
                    pending.add(pool.submit(_read_field, store, plan, field, tries))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _read_field(
    store: xr.Dataset, plan: ConversionPlan, field: Field, tries: int
) -> tuple[Field, np.ndarray]:
    """The field's values in output order: the sum of its reads, as float32."""
    parts = [
        _with_tries(lambda r=read: _select(store, plan, r), tries, plan, read)
        for read in field.reads
    ]
    # An accumulation is summed in float64 and rounded once.
    total = parts[0] if len(parts) == 1 else np.sum([p.astype(np.float64) for p in parts], axis=0)
    return field, np.asarray(total, np.float32)


def _select(store: xr.Dataset, plan: ConversionPlan, read) -> np.ndarray:
    layout = plan.layout
    variable = store[read.variable]
    selection = {layout.lat_dim: plan.lat_index, layout.lon_dim: plan.lon_index}
    if layout.level_dim in variable.dims:
        selection[layout.level_dim] = plan.level_index
    if read.time_index is not None:
        selection[layout.time_dim] = read.time_index
    values = variable.isel(selection)
    order = [d for d in (layout.level_dim, layout.lat_dim, layout.lon_dim) if d in values.dims]
    return np.asarray(values.transpose(*order).values)


def _with_tries(read: Callable[[], np.ndarray], tries: int, plan: ConversionPlan, what):
    for attempt in range(1, tries + 1):
        try:
            return read()
        except Exception as error:  # gcsfs, aiohttp and zarr raise many types
            if attempt == tries:
                raise FetchError(
                    f"reading {what.variable} (time index {what.time_index}) from {plan.uri} "
                    f"failed {tries} times ({type(error).__name__}: {str(error)[:120]}); run "
                    "fetch-data again, or point --endpoint at a mirror"
                ) from None
            time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _attrs(plan: ConversionPlan) -> dict:
    request = plan.request
    return {
        "description": (
            f"ERA5 from {plan.layout.title} ({plan.uri}) in the official GraphCast layout, "
            f"initialised at {request.init:%Y-%m-%dT%H:%M}; {plan.frames_with_data} of "
            f"{len(request.frame_times())} frames hold data (later frames: forecast only, no "
            "targets)"
        ),
        "source": "era5",
        "store": plan.uri,
        "init_time": f"{request.init:%Y-%m-%dT%H:%M}",
        "resolution": float(request.resolution),
    }


def _write_skeleton(plan: ConversionPlan, path: Path) -> None:
    request = plan.request
    create_official_file(
        path, request.frame_times(), request.lat(), request.lon(), request.levels, _attrs(plan)
    )
