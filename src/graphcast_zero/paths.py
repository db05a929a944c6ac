"""Where things live: the one place that turns a data-folder setting into paths.

Precedence for the data folder: an explicit argument (``--data-dir``), then the
``GRAPHCAST_DATA_DIR`` environment variable, then invoke's config (``data_dir`` in
``invoke.yaml``), then ``./data`` beside the current directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]  # a file or folder as the user gives it
DATA_DIR_ENV = "GRAPHCAST_DATA_DIR"
DEFAULT_DATA_DIR = "data"
PAYLOAD_FOLDERS = ("params", "stats", "dataset", "outputs")
STATS_FILES = ("diffs_stddev_by_level.nc", "mean_by_level.nc", "stddev_by_level.nc")


@dataclasses.dataclass(frozen=True)
class DataPaths:
    """The data folder and its payload folders (bucket file names are kept unchanged inside)."""

    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params"

    @property
    def stats(self) -> Path:
        return self.root / "stats"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def cache(self) -> Path:
        """Rebuildable files: compiled programs (``jax``) and graphs (``graphs``)."""
        return self.root / "cache"

    def folders(self) -> tuple[Path, ...]:
        """The payload folders, in the order they are created."""
        return tuple(self.root / name for name in PAYLOAD_FOLDERS)

    def stats_files(self) -> tuple[Path, ...]:
        """The three normalisation files a model needs."""
        return tuple(self.stats / name for name in STATS_FILES)


def resolve_data_dir(
    explicit: Optional[str | os.PathLike] = None,
    config_value: Optional[str | os.PathLike] = None,
    environ: Optional[dict] = None,
) -> DataPaths:
    """Picks the data folder by precedence: argument, environment, invoke config, default.

    Args:
      explicit: the value of ``--data-dir``, if given.
      config_value: ``data_dir`` from invoke's configuration, if set.
      environ: the environment to read (defaults to ``os.environ``).

    Returns:
      The resolved, absolute data paths.
    """
    environ = os.environ if environ is None else environ
    chosen = explicit or environ.get(DATA_DIR_ENV) or config_value or DEFAULT_DATA_DIR
    return DataPaths(Path(chosen).expanduser().resolve())
