"""Where data comes from: every dataset enters through this seam.

:func:`open_dataset` opens a dataset lazily from a URI (a local NetCDF file or Zarr folder,
``gs://``, a GCS-compatible endpoint); callers then select the frames they need
(:func:`graphcast_zero.data.forecast_window` by position, :func:`window_at` by initialisation
time) and only those are read. Each source converts its own layout to the official one once:

- the bucket's example files are already official (:mod:`graphcast_zero.fetch`);
- ERA5 Zarr stores (ARCO-ERA5, WeatherBench2): :mod:`~graphcast_zero.sources.layouts` describes
  them, :mod:`~graphcast_zero.sources.era5_plan` decides what to read,
  :mod:`~graphcast_zero.sources.era5_convert` reads and writes the official file and
  :mod:`~graphcast_zero.sources.era5_fetch` is ``fetch-data --source era5``;
  :mod:`~graphcast_zero.sources.converter_check` compares a built file with DeepMind's example;
- ECMWF's open data (today's IFS analyses, GRIB2): :mod:`~graphcast_zero.sources.open_data`
  knows the parameters and mirrors and drives ECMWF's client,
  :mod:`~graphcast_zero.sources.open_data_grib` decodes the files and
  :mod:`~graphcast_zero.sources.open_data_fetch` is ``fetch-data --source ecmwf-open-data``;
- both converters write through :mod:`~graphcast_zero.sources.official_file`;
- the synthetic generator (:mod:`graphcast_zero.synthetic`) writes official files and stores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.config import STEP
from graphcast_zero.errors import InputError
from graphcast_zero.sources.opening import is_remote, open_dataset, storage_options

__all__ = ["is_remote", "open_dataset", "storage_options", "window_at"]


def window_at(
    dataset: xr.Dataset, init, input_frames: int, steps: int, name: str = "dataset"
) -> xr.Dataset:
    """The frames of a forecast initialised at ``init`` in an official-layout dataset, lazily:
    ``input_frames`` frames ending at ``init`` and ``steps`` frames after it.

    Raises:
      InputError: ``init`` is not a frame of the dataset, or too close to its start or end.
    """
    when = np.datetime64(pd.Timestamp(init), "ns")
    frames = dataset["datetime"].values.reshape(-1, dataset.sizes["time"])[0]  # first member
    found = np.flatnonzero(frames == when)
    first = int(found[0]) - (input_frames - 1) if found.size else -1
    if first < 0 or first + input_frames + steps > dataset.sizes["time"]:
        hours = int(STEP / pd.Timedelta(hours=1))
        raise InputError(
            f"{name} has no {input_frames} input frames ending at {pd.Timestamp(init)} followed "
            f"by {steps} frames {hours} h apart: choose an init between "
            f"{pd.Timestamp(frames[input_frames - 1])} and "
            f"{pd.Timestamp(frames[max(len(frames) - steps - 1, 0)])}"
        )
    return dataset.isel(time=slice(first, first + input_frames + steps))
