"""Choosing the workflow's files: the newest fitting checkpoint, dataset or run in the data folder.

Each function returns the option the user gave when there is one, and otherwise picks from the
data folder, raising a one-line :class:`~graphcast_zero.errors.InputError` that says how to get
the missing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from graphcast_zero import catalog, validation
from graphcast_zero.checkpoint import Checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.workflow.run_folder import PREDICTIONS


def newest_file(folder: Path, pattern: str, what: str, fix: str) -> Path:
    """The most recently modified file matching ``pattern`` (hidden files skipped)."""
    files = [p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise InputError(f"no {what} in {folder}: {fix}")
    return max(files, key=lambda p: (p.stat().st_mtime, p.name))


def choose_params(paths: DataPaths, params: Optional[PathLike]) -> Path:
    """``--params``, else the newest checkpoint in ``<data>/params``."""
    if params:
        return Path(params)
    return newest_file(paths.params, "*.npz", "checkpoint (.npz)", "run `invoke fetch-data`")


def choose_dataset(paths: DataPaths, dataset: Optional[PathLike], ckpt: Checkpoint) -> Path:
    """``--dataset``, else the newest dataset in ``<data>/dataset`` whose name fits the model.

    Files whose names do not follow the bucket's pattern are considered too, after those that fit.
    """
    if dataset:
        return Path(dataset)
    files = sorted(
        (p for p in paths.dataset.glob("*.nc") if not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    model = catalog.PublishedModel("checkpoint", "", ckpt.model_config, ckpt.task_config)
    fits, unknown, misfits = [], [], []
    for path in files:
        parsed = catalog.parse_dataset_name(path.name)
        if parsed is None:
            unknown.append(path)
        elif (why := catalog.dataset_misfit(model, parsed)) is None:
            fits.append(path)
        else:
            misfits.append(f"{path.name} has {why}")
    if fits or unknown:
        return (fits + unknown)[0]
    found = f" ({misfits[0]})" if misfits else ""
    raise InputError(
        f"no dataset in {paths.dataset} fits the checkpoint{found}: fetch one "
        f"{validation.LIST_HINT} or pass --dataset"
    )


def newest_run(paths: DataPaths, marker: str = PREDICTIONS) -> Path:
    """The newest run folder under ``<data>/outputs`` holding ``marker``."""
    runs = [
        p.parent for p in paths.outputs.glob(f"*/{marker}") if not p.parent.name.startswith(".")
    ]
    if not runs:
        raise InputError(
            f"no run with {marker} in {paths.outputs}: run `invoke run-inference` first"
        )
    return max(runs, key=lambda p: ((p / marker).stat().st_mtime, p.name))
