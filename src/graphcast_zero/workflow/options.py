"""The tasks' options as the workflow reads them: checked values and the message sink.

Values come from invoke as text or numbers; each check turns a bad value into a one-line
:class:`~graphcast_zero.errors.InputError` that names the option. :class:`RandomModel` gathers
``run-training --random``'s architecture options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from graphcast_zero.config import TASK_13, TASK_37, ModelConfig, TaskConfig
from graphcast_zero.errors import InputError

if TYPE_CHECKING:
    from graphcast_zero.checkpoint import Checkpoint

Log = Callable[[str], None]  # where the workflow's messages go (print by default)


def precision_option(precision: str) -> str:
    """``--precision`` resolved for this machine (``auto``: bfloat16 on accelerators, float32 on
    CPUs); an unknown name is an InputError."""
    from graphcast_zero.predictor import resolve_precision

    try:
        return resolve_precision(precision)
    except ValueError as error:
        raise InputError(f"--{error}") from None


def positive_number(value, option: str) -> float:
    """``value`` as a float greater than 0 (invoke may pass text); else an InputError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise InputError(f"{option} must be a positive number, not {value!r}")
    return number


def time_option(text, option: str, example: str = "2022-01-01T00") -> pd.Timestamp:
    """A UTC time option (``2022-01-01T00``, or any form pandas reads) as a naive timestamp;
    else an InputError naming the option and ``example``."""
    try:
        stamp = pd.Timestamp(str(text).strip())
    except ValueError:
        stamp = None
    if stamp is None or stamp is pd.NaT:
        raise InputError(f"{option} {text!r} is not a time: use e.g. {example}")
    return stamp.tz_convert(None) if stamp.tzinfo else stamp


@dataclasses.dataclass(frozen=True)
class RandomModel:
    """The architecture of ``--random`` weights, on a resolution-0 model that fits any grid.

    Attributes:
      mesh_size, latent_size, gnn_msg_steps, hidden_layers: as in ``ModelConfig``.
      levels: 13 or 37 pressure levels (the published tasks with precipitation as an input).
      seed: seeds the weights.
    """

    mesh_size: int = 4
    latent_size: int = 32
    gnn_msg_steps: int = 4
    hidden_layers: int = 1
    levels: int = 13
    seed: int = 0

    def model_config(self) -> ModelConfig:
        """The architecture as a ``ModelConfig``; a value below 1 is an InputError."""
        for option in ("mesh_size", "latent_size", "gnn_msg_steps", "hidden_layers"):
            if getattr(self, option) < 1:
                flag = option.replace("_", "-")
                raise InputError(f"--{flag} must be at least 1, not {getattr(self, option)}")
        return ModelConfig(
            resolution=0.0,
            mesh_size=self.mesh_size,
            latent_size=self.latent_size,
            gnn_msg_steps=self.gnn_msg_steps,
            hidden_layers=self.hidden_layers,
            radius_query_fraction_edge_length=0.6,
        )

    def task_config(self) -> TaskConfig:
        """The published task with this many levels; other counts are an InputError."""
        if self.levels not in (13, 37):
            raise InputError(f"--levels must be 13 or 37, not {self.levels}")
        return TASK_13 if self.levels == 13 else TASK_37

    def checkpoint(self, lat: np.ndarray, lon: np.ndarray) -> Checkpoint:
        """Random weights of this architecture on the grid, like the official notebook's."""
        from graphcast_zero.synthetic import random_checkpoint

        task_config = self.task_config()  # the levels first, as the options are listed
        return random_checkpoint(
            self.model_config(), task_config, lat, lon, seed=self.seed,
            description=f"Random, untrained GraphCast weights (seed {self.seed}), "
            "graphcast_zero run-training",
        )  # fmt: skip
