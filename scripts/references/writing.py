"""Writes reference files the way the committed ones are written, each atomically.

official-small's files are plain (``np.savez``, uncompressed NetCDF4); official-extra's are
compressed (``np.savez_compressed``; zlib level 5 with shuffle on the data variables) to keep the
repository small. Both read back the same with ``np.load`` and ``xarray.load_dataset``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from graphcast_zero.atomic import atomic_path

ZLIB = {"zlib": True, "complevel": 5, "shuffle": True}


def write_netcdf(dataset: xr.Dataset, path: Path, compressed: bool) -> None:
    encoding = {name: dict(ZLIB) for name in dataset.data_vars} if compressed else None
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary, engine="netcdf4", encoding=encoding)


def write_npz(arrays: dict[str, np.ndarray], path: Path, compressed: bool) -> None:
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        save(handle, **arrays)


def write_json(value: dict, path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1))


def copy_file(source: Path, path: Path) -> None:
    with atomic_path(path) as temporary:
        shutil.copyfile(source, temporary)
