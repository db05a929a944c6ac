"""The training loop: the optimiser and its step, batches of time windows, data-parallel placement.

:mod:`graphcast_zero.loss` defines the loss; this module steps the optimiser on it. Like the rest
of the model core it opens no files: :mod:`graphcast_zero.optimizer_state` keeps the optimiser
state on disk. Example datasets hold one batch, so a batch here is built from several sliding time windows of
the dataset (each ``input frames + steps`` long), read one window at a time when a batch needs it. With more than one device the batch axis is
split across a ``Mesh(("batch",))`` and parameters are replicated: ``jax.jit`` then partitions the
step and averages gradients across devices by itself. Arrays are made with
``jax.make_array_from_callback``, so the same code runs on several hosts after
``jax.distributed.initialize()`` (each host reads the same dataset and supplies its own shards).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import numpy as np
import optax
import xarray as xr
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from graphcast_zero import data
from graphcast_zero.config import TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.loss import loss_and_grads
from graphcast_zero.predictor import Predictor

Arrays = dict[str, np.ndarray]  # {variable: [batch, time, lat, lon, channels]}


def default_optimizer(learning_rate: float = 1e-4, clip_norm: Optional[float] = 32.0):
    """AdamW with gradient clipping, as in the paper's fine-tuning (a constant rate here)."""
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    parts.append(optax.adamw(learning_rate, b1=0.9, b2=0.95, weight_decay=0.1))
    return optax.chain(*parts)


def make_train_step(predictor: Predictor, optimizer, remat: bool = False):
    """A jitted ``(params, opt_state, constants, inputs, targets, forcings) -> (params,
    opt_state, loss, diagnostics)`` optimiser step."""

    def train_step(params, opt_state, constants, inputs, targets, forcings):
        (loss, diagnostics), grads = loss_and_grads(
            predictor, params, constants, inputs, targets, forcings, remat
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, diagnostics

    return jax.jit(train_step)


@dataclasses.dataclass(frozen=True)
class Window:
    """One training example: inputs, targets and forcings as host arrays with batch size 1."""

    inputs: Arrays
    targets: Arrays
    forcings: Arrays


class TimeWindows(Sequence):
    """Every window of ``input_frames + steps`` consecutive frames, read when indexed.

    The dataset is usually opened lazily (:func:`graphcast_zero.sources.open_dataset`): only the
    frames of the windows a batch uses are read, so a dataset spanning many days is never in
    memory whole. A dataset with ``batch > 1`` gives each batch member's windows too (windows
    outer).

    Args:
      dataset: an official-layout dataset.
      task_config: the variables and levels to extract.
      steps: target frames per window.
      target_steps: the leading target frames that hold targets (default: every frame); windows
        end there.
    """

    def __init__(
        self,
        dataset: xr.Dataset,
        task_config: TaskConfig,
        steps: int,
        target_steps: Optional[int] = None,
    ):
        frames = dataset.sizes["time"] - task_config.input_frames
        usable = frames if target_steps is None else min(target_steps, frames)
        self.dataset, self.task_config, self.steps = dataset, task_config, steps
        self.starts = max(usable - steps + 1, 0)
        self.members = dataset.sizes.get("batch", 1)

    def __len__(self) -> int:
        return self.starts * self.members

    def __getitem__(self, index: int) -> Window:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start, member = divmod(index, self.members)
        parts = data.forecast_window(self.dataset, self.task_config, self.steps, start=start)
        inputs, targets, forcings = (data.dataset_to_arrays(part) for part in parts)
        return Window(*(_member(a, member) for a in (inputs, targets, forcings)))


def time_windows(dataset: xr.Dataset, predictor: Predictor, steps: int) -> TimeWindows:
    """The windows of :class:`TimeWindows` for a predictor's task."""
    return TimeWindows(dataset, predictor.task_config, steps)


def _member(arrays: Arrays, member: int) -> Arrays:
    # Static variables have batch size 1 in every member.
    return {n: v[min(member, v.shape[0] - 1)][None] for n, v in arrays.items()}


def batch_of(windows: Sequence[Window], iteration: int, batch_size: int) -> Window:
    """The windows of one iteration, cycling through all of them, stacked on the batch axis."""
    chosen = [windows[(iteration * batch_size + j) % len(windows)] for j in range(batch_size)]

    def stack(part: str) -> Arrays:
        return {
            n: np.concatenate([getattr(w, part)[n] for w in chosen])
            for n in getattr(chosen[0], part)
        }

    return Window(stack("inputs"), stack("targets"), stack("forcings"))


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where arrays live: the batch split over a 1-D device mesh, everything else replicated."""

    mesh: Mesh

    @classmethod
    def over_all_devices(cls) -> Placement:
        return cls(Mesh(np.asarray(jax.devices()), ("batch",)))

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def replicated(self, tree: Any) -> Any:
        sharding = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(lambda leaf: _global(np.asarray(leaf), sharding), tree)

    def batched(self, arrays: Arrays) -> Arrays:
        sharding = NamedSharding(self.mesh, PartitionSpec("batch"))
        return {n: _global(v, sharding) for n, v in arrays.items()}


def _global(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # Each process supplies only the shards its devices hold (multi-host safe).
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def check_batch_size(batch_size: int, num_devices: int) -> None:
    if batch_size < 1 or batch_size % num_devices:
        raise InputError(
            f"--batch-size {batch_size} must be a positive multiple of the {num_devices} devices"
        )


@dataclasses.dataclass
class LoopResult:
    """Parameters and optimiser state after the loop, and the loss of each iteration."""

    params: Any
    opt_state: Any
    losses: list[float]


def train(
    predictor: Predictor,
    params,
    optimizer,
    opt_state,
    *,
    windows: Sequence[Window],
    iterations: int,
    batch_size: int,
    placement: Placement,
    first_iteration: int = 0,
    on_iteration: Optional[Callable[[int, float], None]] = None,
) -> LoopResult:
    """Runs ``iterations`` optimiser steps; the loss reported is the one before each update."""
    check_batch_size(batch_size, placement.num_devices)
    step = make_train_step(predictor, optimizer)
    params, opt_state = placement.replicated(params), placement.replicated(opt_state)
    constants = placement.replicated(predictor.constants())
    losses = []
    for iteration in range(first_iteration, first_iteration + iterations):
        batch = batch_of(windows, iteration, batch_size)
        params, opt_state, loss, _ = step(
            params,
            opt_state,
            constants,
            placement.batched(batch.inputs),
            placement.batched(batch.targets),
            placement.batched(batch.forcings),
        )
        losses.append(float(loss))
        if not np.isfinite(losses[-1]):
            raise InputError(
                f"training loss became {losses[-1]} at iteration {iteration + 1}: lower "
                "--learning-rate"
            )
        if on_iteration is not None:
            on_iteration(iteration + 1, losses[-1])
    return LoopResult(params=params, opt_state=opt_state, losses=losses)
