"""Run folders under ``<data>/outputs``: their names, the files they hold, and how they are written.

A run folder is built under a hidden temporary name and renamed when complete, so a failed run
leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from graphcast_zero import validation

PREDICTIONS = "predictions.nc"
RUN_INFO = "run.json"


def default_run_name(label: str) -> str:
    """``20260301-120000-GraphCast_small``: a timestamp and the model's short name."""
    short = label.split(" - ")[0].removesuffix(".npz").replace(" ", "_")
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{short}"


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yields a hidden folder beside ``final``; on success its files land in ``final``.

    A new ``final`` is a single rename; into an existing folder each file is renamed in. On any
    error the staging folder is removed, so nothing half-written is left.
    """
    validation.check_writable_folder(final.parent)
    stage = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        if final.exists():
            for item in stage.iterdir():
                os.replace(item, final / item.name)
            stage.rmdir()
        else:
            os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
