"""The dataset seam: lazy opening of local files and folders, and windows by init time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero import sources
from graphcast_zero.config import TASK_13
from graphcast_zero.errors import InputError
from graphcast_zero.train_loop import TimeWindows

from ..conftest import FIXTURE_DATASET


def test_opening_is_lazy_and_reads_only_what_is_selected(stores):
    dataset = sources.open_dataset(FIXTURE_DATASET)
    assert not dataset["temperature"].variable._in_memory
    store = sources.open_dataset(stores["wb2"])  # a local Zarr folder
    assert not store["temperature"].variable._in_memory and store.sizes["level"] == 13


def test_window_at_an_init_time():
    dataset = sources.open_dataset(FIXTURE_DATASET)  # frames 2022-01-01T00 … 2022-01-02T06
    window = sources.window_at(dataset, "2022-01-01T12", 2, 3)
    assert window["datetime"].values[0, [0, -1]].tolist() == [
        pd.Timestamp("2022-01-01T06").value, pd.Timestamp("2022-01-02T06").value,
    ]  # fmt: skip
    with pytest.raises(InputError, match="choose an init between 2022-01-01 06:00:00 and"):
        sources.window_at(dataset, "2022-01-01T00", 2, 1)


def test_training_windows_are_read_when_indexed():
    dataset = sources.open_dataset(FIXTURE_DATASET)
    windows = TimeWindows(dataset, TASK_13, steps=1)
    assert len(windows) == 4 and not dataset["temperature"].variable._in_memory
    loaded = xr.load_dataset(FIXTURE_DATASET, decode_timedelta=True)
    third = windows[2]
    np.testing.assert_array_equal(
        third.targets["temperature"][0, 0, ..., 0], loaded["temperature"].values[0, 4, 0]
    )
    assert len(TimeWindows(dataset, TASK_13, steps=1, target_steps=2)) == 2
