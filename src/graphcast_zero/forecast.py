"""A forecast of a dataset: its first window, the rollout, and the predictions as a dataset.

The one path from an official-layout dataset to official-layout predictions, shared by the
forecast task (:mod:`graphcast_zero.workflow.inference`) and the scoring of the shipped demo model
(:mod:`graphcast_zero.demo_model`). Like the model core it opens no files and prints nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero import data, rollout
from graphcast_zero.config import TaskConfig
from graphcast_zero.predictor import Predictor


@dataclasses.dataclass(frozen=True)
class Window:
    """A forecast's frames, as datasets and as the arrays the model takes.

    Attributes:
      inputs, targets, forcings: ``data.forecast_window`` of the dataset.
      input_arrays: every input variable, [batch, frames, lat, lon, channels].
      forcing_arrays: every forcing variable at the target times, [batch, steps, lat, lon,
        channels].
    """

    inputs: xr.Dataset
    targets: xr.Dataset
    forcings: xr.Dataset
    input_arrays: dict[str, np.ndarray]
    forcing_arrays: dict[str, np.ndarray]


def forecast_window(dataset: xr.Dataset, task: TaskConfig, steps: int) -> Window:
    """The first window of ``dataset`` for a forecast of ``steps`` steps, read once."""
    inputs, targets, forcings = data.forecast_window(dataset, task, steps)
    return Window(
        inputs, targets, forcings, data.dataset_to_arrays(inputs), data.dataset_to_arrays(forcings)
    )


def forecast_dataset(
    predictor: Predictor,
    params,
    dataset: xr.Dataset,
    steps: int,
    *,
    window: Optional[Window] = None,
    chunk_steps: Optional[int] = None,
    on_step: Optional[Callable[[int, int], None]] = None,
    program: Optional[rollout.RolloutProgram] = None,
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Forecasts ``steps`` 6-hour steps from the start of ``dataset``.

    Args:
      predictor: the model, built on the dataset's grid.
      params: its parameters (device arrays).
      dataset: official layout, with a ``datetime`` coordinate; its first frames are the inputs.
      steps: how many steps to forecast (the dataset holds at least that many targets).
      window: ``forecast_window(dataset, ...)`` when the caller has read it already.
      chunk_steps, on_step, program: as for :func:`graphcast_zero.rollout.predict`.

    Returns:
      (predictions, targets, inputs): the predictions in the official layout with lead times and
      valid ``datetime``\\ s, the dataset's frames at the same lead times, and the input frames.
    """
    task = predictor.task_config
    window = window or forecast_window(dataset, task, steps)
    arrays = rollout.predict(
        predictor,
        params,
        window.input_arrays,
        window.forcing_arrays,
        chunk_steps=chunk_steps,
        on_step=on_step,
        program=program,
    )
    reference = dataset["datetime"].isel(time=task.input_frames - 1).values  # [batch]
    predictions = data.arrays_to_dataset(
        arrays,
        lat=dataset["lat"].values,
        lon=dataset["lon"].values,
        levels=task.pressure_levels,
        lead_times=window.targets["time"].values,
        reference_datetimes=np.atleast_1d(reference),
    )
    return predictions, window.targets, window.inputs
