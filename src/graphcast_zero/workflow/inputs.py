"""Loading the workflow's three inputs (checkpoint, statistics, dataset) and checking they fit.

The checks of :mod:`graphcast_zero.validation` run here, before anything compiles, so a wrong
file fails in a second with a one-line message.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import xarray as xr

from graphcast_zero import validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
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
    dataset: xr.Dataset
    dataset_path: Path
    steps: int


def load_setup(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: Optional[int] = None,
    checkpoint: Optional[Checkpoint] = None,
) -> Setup:
    """Loads and cross-checks the three inputs; ``steps`` defaults to every target available."""
    params_path = choose_params(paths, params) if checkpoint is None else Path(params or "")
    checkpoint = checkpoint or load_checkpoint(params_path)
    dataset_path = choose_dataset(paths, dataset, checkpoint)
    frame = validation.open_dataset(dataset_path)
    if steps is None or steps == 0:
        steps = max(validation.available_steps(frame, checkpoint.task_config), 1)
    name = dataset_path.name
    validation.check_dataset(frame, name, checkpoint.model_config, checkpoint.task_config, steps)
    stats_dir = Path(stats_dir) if stats_dir else paths.stats
    statistics = load_statistics(stats_dir)
    validation.check_statistics(statistics, checkpoint.task_config, stats_dir)
    return Setup(checkpoint, params_path, statistics, stats_dir, frame, dataset_path, steps)
