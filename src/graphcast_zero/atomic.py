"""Atomic file writes: a temporary file beside the target, renamed over it only on success.

Every writer of the package (checkpoints, NetCDF, metrics, pictures, run records) goes through
``atomic_path``, so an interrupted or failed write never leaves a half-written file under the
final name. The NetCDF and JSON writers every module shares are here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from graphcast_zero.errors import InputError

if TYPE_CHECKING:
    import xarray as xr


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yields a temporary file beside ``path`` (same suffix) that replaces ``path`` on success.

    The folder is created if needed. On any error the temporary file is removed, so a failed
    write leaves neither a partial file nor the previous one changed.

    Raises:
      InputError: when the folder cannot be created or written to.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise InputError(
            f"{path}: cannot write there ({error.strerror}); choose a writable folder"
        ) from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results should be readable like any file
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_netcdf(dataset: xr.Dataset, path) -> Path:
    """Writes a dataset to NetCDF through a temporary name and a rename; returns ``path``."""
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)


def write_json(payload: dict, path) -> Path:
    """Writes indented JSON (values it cannot encode as text) atomically; returns ``path``."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    return Path(path)
