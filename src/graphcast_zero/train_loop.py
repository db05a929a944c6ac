"""The training loop: the optimiser and its step, time windows, data-parallel placement.

:mod:`graphcast_zero.loss` defines the loss; this module steps the optimiser on it. Like the rest
of the model core it opens no files and prints nothing: batches come in from an iterator
(:mod:`graphcast_zero.loader` draws them), and the caller's ``on_iteration`` hook sees every
iteration's loss and state, to show progress, score a validation set or save a checkpoint. A
training window is ``input frames + steps`` consecutive frames; :class:`TimeWindows` serves those
of a dataset, reading each only when it is used. With more than one device the batch axis is
split across a ``Mesh(("batch",))`` and parameters are replicated: ``jax.jit`` then partitions
the step and averages gradients across devices by itself. Batches are placed with
``jax.make_array_from_process_local_data``, so the same code runs on several processes after
``jax.distributed.initialize`` (:mod:`graphcast_zero.distributed`): each process supplies only
its own rows of the global batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from graphcast_zero import data, memory
from graphcast_zero.config import TaskConfig
from graphcast_zero.errors import InputError
from graphcast_zero.loss import loss_and_diagnostics, loss_and_grads
from graphcast_zero.predictor import Predictor

Arrays = dict[str, np.ndarray]  # {variable: [batch, time, lat, lon, channels]}


def default_optimizer(learning_rate: float = 1e-4, clip_norm: Optional[float] = 32.0):
    """AdamW with gradient clipping, as in the paper's fine-tuning (a constant rate here)."""
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    parts.append(optax.adamw(learning_rate, b1=0.9, b2=0.95, weight_decay=0.1))
    return optax.chain(*parts)


def make_train_step(predictor: Predictor, optimizer, remat: Optional[bool] = None):
    """A jitted ``(params, opt_state, constants, inputs, targets, forcings, rate_scale=1.0) ->
    (params, opt_state, loss, diagnostics)`` optimiser step.

    ``remat`` recomputes a multi-step loss one step at a time in the backward pass (default:
    the predictor's ``memory.remat_steps``).

    ``rate_scale`` multiplies the optimiser's update (AdamW's whole update, weight decay included,
    is proportional to its rate), so a learning-rate schedule evaluated by the caller changes no
    optimiser state: states saved with or without a schedule fit each other.
    """

    def train_step(params, opt_state, constants, inputs, targets, forcings, rate_scale=1.0):
        (loss, diagnostics), grads = loss_and_grads(
            predictor, params, constants, inputs, targets, forcings, remat
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: u * jnp.asarray(rate_scale, u.dtype), updates)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, diagnostics

    return jax.jit(train_step)


def make_eval_step(predictor: Predictor):
    """A jitted ``(params, constants, inputs, targets, forcings) -> loss``: the training loss
    without gradients, for a validation set."""

    def eval_step(params, constants, inputs, targets, forcings):
        return loss_and_diagnostics(predictor, params, constants, inputs, targets, forcings)[0]

    return jax.jit(eval_step)


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
        window = make_window(self.dataset, self.task_config, self.steps, start)
        return Window(
            *(_member(a, member) for a in (window.inputs, window.targets, window.forcings))
        )


def make_window(dataset: xr.Dataset, task_config: TaskConfig, steps: int, start: int = 0) -> Window:
    """The window of ``steps`` targets whose first frame is ``start``, as model arrays (every
    batch member of the dataset)."""
    parts = data.forecast_window(dataset, task_config, steps, start=start)
    return Window(*(data.dataset_to_arrays(part) for part in parts))


def time_windows(dataset: xr.Dataset, predictor: Predictor, steps: int) -> TimeWindows:
    """The windows of :class:`TimeWindows` for a predictor's task."""
    return TimeWindows(dataset, predictor.task_config, steps)


def _member(arrays: Arrays, member: int) -> Arrays:
    # Static variables have batch size 1 in every member.
    return {n: v[min(member, v.shape[0] - 1)][None] for n, v in arrays.items()}


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
        """This process's rows of a global batch, as global arrays split over the mesh."""
        sharding = NamedSharding(self.mesh, PartitionSpec("batch"))
        return {
            n: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for n, v in arrays.items()
        }


def _global(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # Every process holds the whole value and supplies the shards its devices hold.
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def check_batch_size(batch_size: int, num_devices: int) -> None:
    if batch_size < 1 or batch_size % num_devices:
        raise InputError(
            f"--batch-size {batch_size} must be a positive multiple of the {num_devices} devices"
        )


def choose_memory_plan(
    predictor: Predictor,
    params,
    optimizer,
    opt_state,
    batch: Window,
    placement: Placement,
    grid_chunks: Optional[int] = None,
    remat: str = "auto",
    budget: Optional[float] = None,
) -> tuple[memory.Choice, Any]:
    """The cheapest memory plan whose training step fits the device (``memory.choose``).

    Each candidate's optimiser step is compiled (not run) for ``batch``, and XLA's buffer
    assignment compared with the device's memory.

    Args:
      predictor: the model (its own plan is ignored).
      params, optimizer, opt_state, placement: as for ``train``.
      batch: this process's part of a global batch with the largest step count to be trained.
      grid_chunks: a fixed chunk count, or None to choose.
      remat: ``auto`` or a fixed choice (see ``memory.restrict``).
      budget: usable device bytes (default: ``memory.device_budget()``).

    Returns:
      (the choice, the chosen plan's compiled step for batches like ``batch``, or None when
      nothing was compiled), the step to pass to ``train`` as ``compiled_steps``.
    """
    loss_steps = next(iter(batch.targets.values())).shape[1]
    plans = memory.restrict(
        memory.ladder(predictor.graphs.num_grid_nodes, True, loss_steps), grid_chunks, remat
    )
    arrays = [placement.batched(part) for part in (batch.inputs, batch.targets, batch.forcings)]
    state = placement.replicated(params), placement.replicated(opt_state)
    compiled = {}

    def measure(plan: memory.MemoryPlan) -> int:
        planned = dataclasses.replace(predictor, memory=plan)
        constants = placement.replicated(planned.constants())
        step = make_train_step(planned, optimizer)
        # rate_scale passed as ``train`` passes it: a Python float, traced.
        compiled[plan] = step.lower(*state, constants, *arrays, 1.0).compile()
        return memory.compiled_bytes(compiled[plan])

    choice = memory.choose(plans, measure, memory.device_budget() if budget is None else budget)
    return choice, compiled.get(choice.plan)


@dataclasses.dataclass(frozen=True)
class IterationState:
    """What the ``on_iteration`` hook sees after an optimiser step.

    Attributes:
      iteration: iterations done, earlier runs' included.
      loss: the loss before this step's update.
      params, opt_state: after the update, placed on the devices.
      data_wait_s: seconds this iteration waited for its batch.
      step_s: seconds from having the batch to having the loss (placing it, computing).
    """

    iteration: int
    loss: float
    params: Any
    opt_state: Any
    data_wait_s: float
    step_s: float


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
    batches: Iterator[Window],
    iterations: int,
    placement: Placement,
    first_iteration: int = 0,
    rate_scale: Callable[[int], float] = lambda iteration: 1.0,
    on_iteration: Optional[Callable[[IterationState], None]] = None,
    compiled_steps: Optional[dict[int, Any]] = None,
    constants: Any = None,
) -> LoopResult:
    """Runs ``iterations`` optimiser steps on the next batches; the loss reported is the one
    before each update.

    Args:
      predictor, params, optimizer, opt_state: the model and where its training stands.
      batches: this process's part of each global batch (windows stacked on the batch axis); a
        batch's step count may change between iterations (a curriculum): the step is compiled
        once per count.
      iterations: optimiser steps to run.
      placement: the device mesh.
      first_iteration: iterations done before (the schedule's position).
      rate_scale: the learning-rate multiplier of each 0-based iteration.
      on_iteration: called after every step (progress, validation, checkpoints).
      compiled_steps: per loss step count, the step ``choose_memory_plan`` compiled for this
        predictor's plan, run instead of compiling it again.
      constants: ``predictor.constants()`` placed by ``placement``, when the caller has them
        (default: placed here).

    Raises:
      InputError: the loss stopped being finite.
    """
    step = make_train_step(predictor, optimizer)
    params, opt_state = placement.replicated(params), placement.replicated(opt_state)
    if constants is None:
        constants = placement.replicated(predictor.constants())
    losses = []
    for iteration in range(first_iteration, first_iteration + iterations):
        asked = time.perf_counter()
        batch = next(batches)
        wait = time.perf_counter() - asked
        steps = next(iter(batch.targets.values())).shape[1]
        run = (compiled_steps or {}).get(steps, step)
        params, opt_state, loss, _ = run(
            params,
            opt_state,
            constants,
            placement.batched(batch.inputs),
            placement.batched(batch.targets),
            placement.batched(batch.forcings),
            rate_scale(iteration),
        )
        losses.append(float(loss))  # waits for the step: the next batch is read meanwhile
        computed = time.perf_counter() - asked - wait
        if not np.isfinite(losses[-1]):
            raise InputError(
                f"training loss became {losses[-1]} at iteration {iteration + 1}: lower "
                "--learning-rate"
            )
        if on_iteration is not None:
            on_iteration(
                IterationState(iteration + 1, losses[-1], params, opt_state, wait, computed)
            )
    return LoopResult(params=params, opt_state=opt_state, losses=losses)
