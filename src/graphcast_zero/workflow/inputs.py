"""Loading the workflow's three inputs (checkpoint, statistics, dataset) and checking they fit.

The dataset is opened lazily through :func:`graphcast_zero.sources.open_dataset`: the checks and
the tasks read only the frames they use. The checks of :mod:`graphcast_zero.validation` run here,
before anything compiles, so a wrong file fails in a second with a one-line message.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import xarray as xr

from graphcast_zero import sources, validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.config import TaskConfig
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.statistics import Statistics, load_statistics
from graphcast_zero.workflow.choosing import choose_dataset, choose_params


@dataclasses.dataclass(frozen=True)
class Setup:
    """A checked combination of checkpoint, statistics and dataset."""

    checkpoint: Checkpoint
    params_path: Path
    statistics: Statistics
    stats_dir: Path
    dataset: xr.Dataset  # opened lazily: values are read when a selection of them is used
    dataset_path: Path
    steps: int
    target_steps: int  # the leading steps whose targets the dataset holds (forecast-only after)


def load_setup(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: Optional[int] = None,
    checkpoint: Optional[Checkpoint] = None,
    check_values: bool = True,
) -> Setup:
    """Loads and cross-checks the three inputs; ``steps`` defaults to every frame available.

    A dataset whose later frames hold no targets (forecast-only) is valid: ``target_steps``
    says how many steps can be scored. ``check_values=False``: see
    :func:`~graphcast_zero.validation.check_dataset`.
    """
    params_path = choose_params(paths, params) if checkpoint is None else Path(params or "")
    checkpoint = checkpoint or load_checkpoint(params_path)
    dataset_path = choose_dataset(paths, dataset, checkpoint)
    frame = sources.open_dataset(dataset_path)
    task = checkpoint.task_config
    if steps is None or steps == 0:
        steps = max(validation.available_steps(frame, task), 1)
    name = dataset_path.name
    scored = validation.check_dataset(
        frame, name, checkpoint.model_config, task, steps, check_values
    )
    statistics, stats_dir = load_checked_statistics(paths, stats_dir, task)
    return Setup(checkpoint, params_path, statistics, stats_dir, frame, dataset_path, steps, scored)


def load_checked_statistics(
    paths: DataPaths, stats_dir: Optional[PathLike], task: TaskConfig
) -> tuple[Statistics, Path]:
    """The statistics in ``stats_dir`` (default ``<data>/stats``), checked to cover the task."""
    stats_dir = Path(stats_dir) if stats_dir else paths.stats
    statistics = load_statistics(stats_dir)
    validation.check_statistics(statistics, task, stats_dir)
    return statistics, stats_dir
