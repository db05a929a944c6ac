"""Where training windows come from: a dataset file's sliding windows, or an ERA5 store's.

``run-training`` trains on the sliding windows of a dataset file (the default) or, with
``--source era5``, on windows read straight from an ERA5 store for a range of initialisation
times, with an optional held-out validation range. Both are a :class:`TrainingData`: the grid, the
windows of a given step count, the validation windows, and what ``training.json`` records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero import validation
from graphcast_zero.checkpoint import Checkpoint
from graphcast_zero.config import TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.train_loop import TimeWindows, Window

DATASET = "dataset"
ERA5 = "era5"


@dataclasses.dataclass(frozen=True)
class Era5Training:
    """The options of ``run-training --source era5``.

    Attributes:
      init_start, init_end, init_every: the training windows' initialisation times.
      store: ``auto``, ``arco``, ``wb2``, or a store's address (as ``fetch-data --source era5``).
      endpoint: a GCS-compatible server for ``gs://`` stores.
      resolution: the grid spacing in degrees (default: the model's).
      validation_start, validation_end: a held-out range of initialisation times (optional).
    """

    init_start: str
    init_end: str
    init_every: str = "6h"
    store: str = "auto"
    endpoint: Optional[str] = None
    resolution: Optional[float] = None
    validation_start: Optional[str] = None
    validation_end: Optional[str] = None


def training_source(source: str, **era5_options) -> Optional[Era5Training]:
    """``--source``: None for a dataset file, the ERA5 options for ``era5``.

    Raises:
      InputError: an unknown source, or ERA5 ranges given without ``--source era5``.
    """
    if source == ERA5:
        return Era5Training(**era5_options)
    if source != DATASET:
        raise InputError(f"--source {source!r} is not {DATASET} or {ERA5}")
    given = [name for name in ("init_start", "init_end", "validation_start", "validation_end")
             if era5_options.get(name)]  # fmt: skip
    if given:
        flag = given[0].replace("_", "-")
        raise InputError(f"--{flag} chooses ERA5 windows: add --source era5")
    return None


class TrainingData:
    """The grid, the windows of a step count, the validation windows, and their description."""

    lat: np.ndarray
    lon: np.ndarray
    name: str  # for the checkpoint's description

    def windows(self, steps: int) -> Sequence[Window]:
        raise NotImplementedError

    def validation(self, steps: int) -> Optional[Sequence[Window]]:
        """The held-out windows, or None when there is no validation set."""
        return None

    def record(self) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the windows read from (an open file), once training is done."""


class FileData(TrainingData):
    """The sliding windows of a (lazily opened) dataset file that end where its targets do."""

    def __init__(self, dataset: xr.Dataset, path: Path, task_config: TaskConfig, usable: int):
        self.dataset, self.path, self.task_config, self.usable = dataset, path, task_config, usable
        self.lat, self.lon, self.name = dataset["lat"].values, dataset["lon"].values, path.name

    def windows(self, steps: int) -> Sequence[Window]:
        return TimeWindows(self.dataset, self.task_config, steps, self.usable)

    def record(self) -> dict:
        return {"source": DATASET, "dataset": str(self.path.absolute())}

    def close(self) -> None:
        # A file held open would pin what a later fetch replaces (HDF5 shares open files).
        self.dataset.close()


def check_file_data(dataset: xr.Dataset, name: str, task_config: TaskConfig, max_steps: int) -> int:
    """The target steps of a training file, checked to hold ``max_steps`` and no NaN.

    Raises:
      InputError: too few targets, or NaN/inf in the frames used.
    """
    usable = validation.target_steps(dataset, task_config)
    if usable < max_steps:
        raise InputError(
            f"dataset {name} holds targets for {usable} steps but the loss needs {max_steps}: "
            "lower --steps (or the --steps-schedule) or fetch a dataset with targets (an "
            "earlier --init)"
        )
    validation.check_finite(dataset, task_config, usable, name)
    return usable


class StoreData(TrainingData):
    """Windows read from an ERA5 store when the loader asks for them."""

    def __init__(self, source, task_config: TaskConfig, inits, validation_inits=None):
        from graphcast_zero.synthetic import grid

        self.source, self.task_config = source, task_config
        self.inits, self.validation_inits = inits, validation_inits
        self.lat, self.lon = grid(source.resolution)
        self.name = f"{source.uri} ({inits.start:%Y-%m-%dT%H} … {inits.end:%Y-%m-%dT%H})"

    def windows(self, steps: int) -> Sequence[Window]:
        from graphcast_zero.sources.era5_windows import Era5Windows

        return Era5Windows(self.source, self.task_config, self.inits, steps)

    def validation(self, steps: int) -> Optional[Sequence[Window]]:
        from graphcast_zero.sources.era5_windows import Era5Windows

        if self.validation_inits is None:
            return None
        return Era5Windows(self.source, self.task_config, self.validation_inits, steps)

    def record(self) -> dict:
        return {
            "source": ERA5,
            "store": self.source.uri,
            "resolution": self.source.resolution,
            "init": self.inits.record(),
            "validation": self.validation_inits.record() if self.validation_inits else None,
        }


def era5_resolution(options: Era5Training, checkpoint: Checkpoint) -> float:
    """``--resolution``, else the model's; a model for any grid (resolution 0) needs the option."""
    resolution = options.resolution or checkpoint.model_config.resolution
    if not resolution:
        raise InputError(
            "this checkpoint fits any grid: pass --resolution (degrees, e.g. 1.0) to choose the "
            "store's points to train on"
        )
    return float(resolution)


def open_store_data(
    options: Era5Training,
    checkpoint: Checkpoint,
    max_steps: int,
    global_batch: int,
) -> StoreData:
    """Opens the store for ``--source era5`` and checks the ranges against it.

    Raises:
      InputError, FetchError: bad ranges, a validation range that overlaps the training one or
        holds fewer windows than a batch, or no store that covers both ranges.
    """
    from graphcast_zero.sources.era5_windows import InitRange, open_era5_store

    inits = InitRange.parse(options.init_start, options.init_end, options.init_every)
    held_out = None
    if options.validation_start or options.validation_end:
        held_out = InitRange.parse(
            options.validation_start or "", options.validation_end or "", options.init_every,
            option="--validation",
        )  # fmt: skip
        if held_out.overlaps(inits):
            raise InputError(
                "--validation-start … --validation-end overlaps --init-start … --init-end: hold "
                "out a range the training does not use"
            )
        if len(held_out.times()) < global_batch:
            raise InputError(
                f"the validation range holds {len(held_out.times())} windows but a batch needs "
                f"{global_batch}: widen --validation-start … --validation-end"
            )
    task = checkpoint.task_config
    resolution = era5_resolution(options, checkpoint)
    levels = tuple(task.pressure_levels)
    source = open_era5_store(options.store, options.endpoint, inits, max_steps, resolution, levels)
    if held_out is not None:
        source.check_covers(held_out, max_steps)
    return StoreData(source, task, inits, held_out)
