"""The one way into a dataset: open it lazily from a URI, whatever and wherever it is.

A URI is a local NetCDF file, a local Zarr folder, or ``gs://bucket/path`` (Zarr or NetCDF) read
anonymously from Google Cloud Storage or from a GCS-compatible ``endpoint`` (a mirror, a local
emulator). Opening reads metadata only: values are read when a selection of them is used, so
callers slice the frames they need first (:func:`graphcast_zero.data.forecast_window`,
:func:`graphcast_zero.sources.window_at`) and only those frames are read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import xarray as xr

from graphcast_zero.errors import FetchError, InputError

GS = "gs://"


def is_remote(uri: str | os.PathLike) -> bool:
    """Whether ``uri`` names an object store (``gs://``) rather than a local path."""
    return str(uri).startswith(GS)


def storage_options(endpoint: Optional[str] = None) -> dict:
    """gcsfs settings: anonymous, the plain JSON-API class, proxies from the environment."""
    from graphcast_zero.remotes import gcs_endpoint

    return {
        "token": "anon",
        "endpoint_url": gcs_endpoint(endpoint),
        "skip_instance_cache": True,
        "session_kwargs": {"trust_env": True},
    }


def gcs_filesystem(endpoint: Optional[str] = None):
    """A gcsfs filesystem for ``endpoint`` (default: Google Cloud Storage or the emulator)."""
    import gcsfs.core

    return gcsfs.core.GCSFileSystem(**storage_options(endpoint))


def open_dataset(uri: str | os.PathLike, *, endpoint: Optional[str] = None) -> xr.Dataset:
    """Opens a dataset lazily: metadata now, values when a selection is used.

    Args:
      uri: a ``.nc`` file, a Zarr folder, or ``gs://bucket/path`` (``.nc`` or Zarr).
      endpoint: a GCS-compatible URL for ``gs://`` URIs (default: Google's, or
        ``STORAGE_EMULATOR_HOST``).

    Raises:
      InputError: a local file is missing or unreadable.
      FetchError: a remote store cannot be read.
    """
    if is_remote(uri):
        return _open_remote(str(uri), endpoint)
    path = Path(uri)
    if not path.exists():
        raise InputError(f"dataset {path} not found: run `invoke fetch-data` or pass --dataset")
    try:
        if path.is_dir():
            return xr.open_zarr(path, chunks=None, consolidated=None, decode_timedelta=True)
        # The bucket's files (written in 2023) store `time` as hours with no dtype attribute;
        # recent xarray decodes such a variable as a timedelta only when asked to.
        return xr.open_dataset(path, decode_timedelta=True)
    except Exception as error:  # netCDF4, h5netcdf, scipy and zarr raise many types
        kind = "Zarr" if path.is_dir() else "NetCDF"
        raise InputError(
            f"dataset {path} cannot be read ({type(error).__name__}: truncated or not {kind}): "
            "delete it and fetch it again (`invoke fetch-data`)"
        ) from None


def _open_remote(uri: str, endpoint: Optional[str]) -> xr.Dataset:
    from graphcast_zero.remotes import probe_bucket, unreachable

    options = storage_options(endpoint)
    bucket = uri[len(GS) :].split("/", 1)[0]
    # A quick look first: gcsfs would retry an unreachable server for minutes.
    answer = probe_bucket(endpoint, bucket=bucket)
    if answer.status is None:
        raise unreachable(f"gs://{bucket} at {options['endpoint_url']}", answer.reason)
    try:
        if uri.endswith(".nc"):
            handle = gcs_filesystem(endpoint).open(uri[len(GS) :], "rb")
            return xr.open_dataset(handle, engine="h5netcdf", decode_timedelta=True)
        return xr.open_zarr(
            uri, chunks=None, consolidated=True, storage_options=options, decode_timedelta=True
        )
    except Exception as error:  # gcsfs, aiohttp and zarr raise many types
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise FetchError(
            f"cannot open {uri} at {options['endpoint_url']} ({type(error).__name__}: {reason}): "
            "check the address, or point --endpoint at a mirror"
        ) from None
