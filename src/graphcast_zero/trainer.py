"""The training loop: batches of time windows, data-parallel placement, optimiser state on disk.

:mod:`graphcast_zero.training` defines the loss and one optimiser step; this module feeds it.
Example datasets hold one batch, so a batch here is built from several sliding time windows of
the dataset (each ``input frames + steps`` long). With more than one device the batch axis is
split across a ``Mesh(("batch",))`` and parameters are replicated: ``jax.jit`` then partitions the
step and averages gradients across devices by itself. Arrays are made with
``jax.make_array_from_callback``, so the same code runs on several hosts after
``jax.distributed.initialize()`` (each host reads the same dataset and supplies its own shards).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
import xarray as xr
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from graphcast_zero import data, memory, training
from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import InputError
from graphcast_zero.model.graphcast import input_frames
from graphcast_zero.predictor import Predictor

Arrays = dict[str, np.ndarray]  # {variable: [batch, time, lat, lon, channels]}


@dataclasses.dataclass(frozen=True)
class Window:
    """One training example: inputs, targets and forcings as host arrays with batch size 1."""

    inputs: Arrays
    targets: Arrays
    forcings: Arrays


def time_windows(dataset: xr.Dataset, predictor: Predictor, steps: int) -> list[Window]:
    """Every window of ``input_frames + steps`` consecutive frames, as model arrays.

    A dataset with ``batch > 1`` gives each batch member's windows too (windows outer).
    """
    length = input_frames(predictor.task_config) + steps
    windows = []
    for start in range(dataset.sizes["time"] - length + 1):
        piece = dataset.isel(time=slice(start, start + length))
        parts = data.extract_inputs_targets_forcings(
            piece, predictor.task_config, slice("6h", f"{6 * steps}h")
        )
        inputs, targets, forcings = (data.dataset_to_arrays(part) for part in parts)
        for member in range(next(iter(targets.values())).shape[0]):
            windows.append(Window(*(_member(a, member) for a in (inputs, targets, forcings))))
    return windows


def _member(arrays: Arrays, member: int) -> Arrays:
    # Static variables have batch size 1 in every member.
    return {n: v[min(member, v.shape[0] - 1)][None] for n, v in arrays.items()}


def batch_of(windows: list[Window], iteration: int, batch_size: int) -> Window:
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


def choose_memory_plan(
    predictor: Predictor,
    params,
    optimizer,
    opt_state,
    windows: list[Window],
    batch_size: int,
    placement: Placement,
    grid_chunks: Optional[int] = None,
    remat: str = "auto",
    budget: Optional[float] = None,
) -> tuple[memory.Choice, Any]:
    """The cheapest memory plan whose training step fits the device (``memory.choose``).

    Each candidate's optimiser step is compiled (not run) for the first batch, and XLA's buffer
    assignment compared with the device's memory.

    Args:
      predictor: the model (its own plan is ignored).
      params, optimizer, opt_state, windows, batch_size, placement: as for ``train``.
      grid_chunks: a fixed chunk count, or None to choose.
      remat: ``auto`` or a fixed choice (see ``memory.restrict``).
      budget: usable device bytes (default: ``memory.device_budget()``).

    Returns:
      (the choice, the chosen plan's compiled step for ``train``, or None when nothing was
      compiled).
    """
    loss_steps = next(iter(windows[0].targets.values())).shape[1]
    plans = memory.restrict(
        memory.ladder(predictor.graphs.num_grid_nodes, True, loss_steps), grid_chunks, remat
    )
    batch = batch_of(windows, 0, batch_size)
    arrays = [placement.batched(part) for part in (batch.inputs, batch.targets, batch.forcings)]
    state = placement.replicated(params), placement.replicated(opt_state)
    compiled = {}

    def measure(plan: memory.MemoryPlan) -> int:
        planned = dataclasses.replace(predictor, memory=plan)
        constants = placement.replicated(planned.constants())
        step = training.make_train_step(planned, optimizer)
        compiled[plan] = step.lower(*state, constants, *arrays).compile()
        return memory.compiled_bytes(compiled[plan])

    choice = memory.choose(plans, measure, memory.device_budget() if budget is None else budget)
    return choice, compiled.get(choice.plan)


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
    windows: list[Window],
    iterations: int,
    batch_size: int,
    placement: Placement,
    first_iteration: int = 0,
    on_iteration: Optional[Callable[[int, float], None]] = None,
    compiled_step=None,
) -> LoopResult:
    """Runs ``iterations`` optimiser steps; the loss reported is the one before each update.

    ``compiled_step``: the step ``choose_memory_plan`` compiled for this predictor's plan, to
    run instead of compiling it again.
    """
    check_batch_size(batch_size, placement.num_devices)
    step = compiled_step or training.make_train_step(predictor, optimizer)
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


def save_optimizer_state(opt_state, iterations: int, path: Path) -> Path:
    """Writes the optimiser state's leaves and the iteration count (``.npz``, no pickle)."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(opt_state)]
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                iterations=np.int64(iterations),
                **{f"leaf_{i}": v for i, v in enumerate(leaves)},
            )
    return path


def load_optimizer_state(path: Path, template) -> tuple[Any, int]:
    """Restores a state saved by :func:`save_optimizer_state` into ``template``'s structure.

    Returns ``(template, 0)`` when there is no such file or it does not fit the template (a
    different optimiser or model): training then resumes with fresh moments.
    """
    leaves, treedef = jax.tree.flatten(template)
    if not path.is_file():
        return template, 0
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = [archive[f"leaf_{i}"] for i in range(len(leaves))]
            iterations = int(archive["iterations"])
    except (OSError, KeyError, ValueError):
        return template, 0
    if any(np.shape(a) != np.shape(b) for a, b in zip(saved, leaves, strict=True)):
        return template, 0
    return jax.tree.unflatten(treedef, saved), iterations
