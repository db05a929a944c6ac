"""The training task: choose the inputs, build the predictor, train it, save it.

Each phase is one function: :func:`choose_training_inputs` (the starting checkpoint, the checked
dataset and statistics, the checkpoint to write), :func:`build_training_predictor`,
:func:`train_predictor` (the loop of :mod:`graphcast_zero.train_loop` with progress, resuming
the optimiser state) and :func:`save_training` (checkpoint in the official format, optimiser
state, loss chart, ``training.json``). :func:`run_training` chains them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from graphcast_zero import sources, validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.predictor import Predictor
from graphcast_zero.workflow.choosing import choose_params, newest_file, newest_run
from graphcast_zero.workflow.compile_cache import use_compilation_cache
from graphcast_zero.workflow.inputs import Setup, load_setup
from graphcast_zero.workflow.options import Log, RandomModel, positive_number, precision_option
from graphcast_zero.workflow.run_folder import staged_folder
from graphcast_zero.workflow.run_info import environment_info

TRAINED = "params.npz"
OPTIMIZER_STATE = "optimizer_state.npz"
HISTORY = "training.json"


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How to train: the loss's steps, the optimiser's iterations and rate, the batch.

    Attributes:
      steps: autoregressive 6-hour steps in the loss.
      iterations: optimiser steps to run.
      learning_rate: AdamW's rate.
      batch_size: windows per step; None is one per device.
    """

    steps: int = 1
    iterations: int = 10
    learning_rate: float = 1e-3
    batch_size: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TrainingFiles:
    """The options that choose what training starts from and where it writes.

    Attributes:
      params: checkpoint to start from (default: the newest in ``<data>/params``).
      random: start from random weights with the architecture ``random_model``.
      random_model: the architecture and seed of ``random`` weights (default ``RandomModel()``).
      dataset, stats_dir: training data and statistics (defaults from the data folder).
      output: the checkpoint to write (default ``<data>/outputs/<timestamp>-train/params.npz``).
      resume: continue from ``output`` (default: the newest trained checkpoint), with its
        optimiser state.
      reset_optimizer: with ``resume``, continue the weights but start the optimiser's moments
        afresh; the iteration count continues from ``training.json`` (0 without one). For a
        saved state that does not fit (another optimiser or model) or is lost.
    """

    params: Optional[PathLike] = None
    random: bool = False
    random_model: Optional[RandomModel] = None
    dataset: Optional[PathLike] = None
    stats_dir: Optional[PathLike] = None
    output: Optional[PathLike] = None
    resume: bool = False
    reset_optimizer: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """What a training run starts from and where it writes.

    Attributes:
      start: the checkpoint whose weights are trained.
      setup: the dataset and statistics, checked against ``start``.
      target: the checkpoint to write; its folder receives the other files.
      resume: whether training continues ``target``.
      reset_optimizer: whether a resumed run starts the optimiser afresh (else its saved state
        continues).
    """

    start: Checkpoint
    setup: Setup
    target: Path
    resume: bool = False
    reset_optimizer: bool = False


@dataclasses.dataclass(frozen=True)
class TrainedWeights:
    """What the loop left: host parameters, optimiser state and losses, and how it ran."""

    params: Any
    opt_state: Any
    losses: list[float]
    iterations_done: int  # all iterations, earlier runs' included when resuming
    num_devices: int
    batch_size: int


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """Where the trained checkpoint went and how the loss went."""

    checkpoint_path: Path
    losses: list[float]
    iterations_done: int
    num_devices: int
    batch_size: int


def run_training(
    paths: DataPaths,
    *,
    params: Optional[PathLike] = None,
    random: bool = False,
    random_model: Optional[RandomModel] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: int = 1,
    iterations: int = 10,
    learning_rate: Union[float, str] = 1e-3,
    batch_size: Optional[int] = None,
    precision: str = "auto",
    output: Optional[PathLike] = None,
    resume: bool = False,
    reset_optimizer: bool = False,
    progress: bool = True,
    log: Log = print,
) -> TrainingResult:
    """Trains for ``iterations`` optimiser steps and saves a checkpoint in the official format.

    Args:
      paths: the data folder.
      params, random, random_model, dataset, stats_dir: what to start from and train on, as in
        :class:`TrainingFiles`.
      steps: autoregressive steps in the loss.
      iterations: optimiser steps to run.
      learning_rate: AdamW's rate.
      batch_size: windows per step (default: one per device); a multiple of the device count.
      precision: ``auto`` (bfloat16 on accelerators, float32 on CPUs), ``bfloat16`` or
        ``float32``.
      output, resume, reset_optimizer: where to write, whether to continue there and with
        which optimiser state (:class:`TrainingFiles`).
      progress: show a progress bar with the loss.
      log: where to print messages.

    Raises:
      InputError: for options or files that do not fit, before anything compiles; when resuming,
        also for a saved optimiser state that does not fit the model (see ``reset_optimizer``).
    """
    import jax

    precision = precision_option(precision)
    if iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {iterations}")
    plan = TrainingPlan(
        steps=steps,
        iterations=iterations,
        learning_rate=positive_number(learning_rate, "--learning-rate"),
        batch_size=batch_size,
    )
    files = TrainingFiles(
        params=params, random=random, random_model=random_model, dataset=dataset,
        stats_dir=stats_dir, output=output, resume=resume, reset_optimizer=reset_optimizer,
    )  # fmt: skip
    inputs = choose_training_inputs(paths, files, steps=steps)
    use_compilation_cache(paths.cache / "jax")
    predictor = build_training_predictor(paths, inputs, precision)
    trained = train_predictor(predictor, inputs, plan, progress=progress)
    if jax.process_index() == 0:  # one writer when several hosts train together
        save_training(inputs, trained, plan)
    log(f"Loss {trained.losses[0]:.4g} -> {trained.losses[-1]:.4g} over {iterations} iterations "
        f"({trained.iterations_done} in all) on {trained.num_devices} device(s); checkpoint: "
        f"{inputs.target}")  # fmt: skip
    return TrainingResult(
        checkpoint_path=inputs.target,
        losses=trained.losses,
        iterations_done=trained.iterations_done,
        num_devices=trained.num_devices,
        batch_size=trained.batch_size,
    )


# -------------------------------------------------------------------------------- choose inputs


def choose_training_inputs(paths: DataPaths, files: TrainingFiles, *, steps: int) -> TrainingInputs:
    """The starting checkpoint, the checked dataset and statistics, and the checkpoint to write.

    Everything is checked here, before anything compiles; ``steps`` is the loss's step count.
    """
    if files.params and files.random:
        raise InputError("--params and --random exclude each other: keep one")
    if files.resume and (files.params or files.random):
        raise InputError(
            "--resume continues the checkpoint named by --output: drop --params/--random"
        )
    if files.reset_optimizer and not files.resume:
        raise InputError("--reset-optimizer only applies with --resume: drop it or add --resume")
    target = _training_output(paths, files.output, files.resume)
    if files.resume:
        start = load_checkpoint(target)
    elif files.random:
        model = files.random_model or RandomModel()
        start = model.checkpoint(*_dataset_grid(paths, files.dataset))
    else:
        start = load_checkpoint(choose_params(paths, files.params))
    params = target if (files.random or files.resume) else files.params
    setup = load_setup(paths, params, files.dataset, files.stats_dir, steps, start)
    # Training needs targets: its windows end where the dataset's targets do.
    usable = validation.target_steps(setup.dataset, start.task_config)
    if usable < steps:
        raise InputError(
            f"dataset {setup.dataset_path.name} holds targets for {usable} steps but the loss "
            f"needs {steps}: lower --steps or fetch a dataset with targets (an earlier --init)"
        )
    validation.check_finite(setup.dataset, start.task_config, usable, setup.dataset_path.name)
    validation.check_writable_folder(target.parent)
    return TrainingInputs(
        start=start,
        setup=setup,
        target=target,
        resume=files.resume,
        reset_optimizer=files.reset_optimizer,
    )


def _training_output(paths: DataPaths, output: Optional[PathLike], resume: bool) -> Path:
    if output:
        output = Path(output).expanduser().absolute()
        if output.suffix != ".npz":
            raise InputError(f"--output {output} must be a .npz file (the checkpoint)")
        if resume and not output.is_file():
            raise InputError(f"--resume: no checkpoint {output} to resume from; drop --resume")
        return output
    if resume:
        return newest_run(paths, TRAINED) / TRAINED
    return paths.outputs / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-train" / TRAINED


def _dataset_grid(paths: DataPaths, dataset: Optional[PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of the training dataset: random weights are built on its grid."""
    path = (
        Path(dataset)
        if dataset
        else newest_file(paths.dataset, "*.nc", "dataset", "run `invoke fetch-data`")
    )
    frame = sources.open_dataset(path)
    return frame["lat"].values, frame["lon"].values


# ------------------------------------------------------------------------------ build and train


def build_training_predictor(paths: DataPaths, inputs: TrainingInputs, precision: str) -> Predictor:
    """The predictor of the starting checkpoint on the dataset's grid (graphs from the cache)."""
    from graphcast_zero.graph_cache import assemble_predictor

    dataset = inputs.setup.dataset
    predictor, _ = assemble_predictor(
        inputs.start.model_config, inputs.start.task_config, inputs.setup.statistics,
        dataset["lat"].values, dataset["lon"].values,
        precision=precision, graphs_folder=paths.cache / "graphs",
    )  # fmt: skip
    return predictor


def train_predictor(
    predictor: Predictor, inputs: TrainingInputs, plan: TrainingPlan, *, progress: bool = True
) -> TrainedWeights:
    """Runs the plan's iterations on every time window of the dataset that has targets, with a
    progress bar; each window is read from the (lazily opened) dataset when a batch needs it.

    A resumed run continues the optimiser state and iteration count saved beside the target, or
    with ``reset_optimizer`` fresh moments and the count ``training.json`` records.

    Raises:
      InputError: a resumed run's saved optimiser state does not fit (without ``reset_optimizer``).
    """
    import jax
    from tqdm.auto import tqdm

    from graphcast_zero import train_loop
    from graphcast_zero.optimizer_state import load_optimizer_state

    placement = train_loop.Placement.over_all_devices()
    batch_size = plan.batch_size or placement.num_devices
    train_loop.check_batch_size(batch_size, placement.num_devices)
    usable = validation.target_steps(inputs.setup.dataset, predictor.task_config)
    windows = train_loop.TimeWindows(
        inputs.setup.dataset, predictor.task_config, plan.steps, usable
    )
    optimizer = train_loop.default_optimizer(plan.learning_rate)
    opt_state, done = optimizer.init(inputs.start.params), 0
    if inputs.resume and inputs.reset_optimizer:
        done = _recorded_iterations(_history(inputs.target.parent / HISTORY))
    elif inputs.resume:
        opt_state, done = load_optimizer_state(inputs.target.parent / OPTIMIZER_STATE, opt_state)
    bar = tqdm(total=plan.iterations, desc="training", unit="it", disable=not progress)

    def report(iteration: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    try:
        result = train_loop.train(
            predictor, inputs.start.params, optimizer, opt_state,
            windows=windows, iterations=plan.iterations, batch_size=batch_size,
            placement=placement, first_iteration=done, on_iteration=report,
        )  # fmt: skip
    finally:
        bar.close()
    return TrainedWeights(
        params=jax.tree.map(np.asarray, result.params),
        opt_state=result.opt_state,
        losses=result.losses,
        iterations_done=done + plan.iterations,
        num_devices=placement.num_devices,
        batch_size=batch_size,
    )


# ----------------------------------------------------------------------------------------- save


def save_training(inputs: TrainingInputs, trained: TrainedWeights, plan: TrainingPlan) -> None:
    """Writes the checkpoint, the optimiser state, a loss chart and training.json together.

    The loss history continues the earlier runs' when resuming, cut to the iterations counted.
    """
    from graphcast_zero import plotting
    from graphcast_zero.atomic import write_json
    from graphcast_zero.checkpoint import save_checkpoint
    from graphcast_zero.optimizer_state import save_optimizer_state

    target, setup, total = inputs.target, inputs.setup, trained.iterations_done
    checkpoint = dataclasses.replace(
        inputs.start,
        params=trained.params,
        description=f"{inputs.start.description.split(' | ')[0]} | fine-tuned by graphcast_zero "
        f"run-training: {total} iterations on {setup.dataset_path.name}",
    )
    previous = _history(target.parent / HISTORY).get("losses")
    losses = list(previous)[: total - len(trained.losses)] if isinstance(previous, list) else []
    losses += trained.losses
    with staged_folder(target.parent) as stage:
        save_checkpoint(checkpoint, stage / target.name)
        save_optimizer_state(trained.opt_state, total, stage / OPTIMIZER_STATE)
        plotting.plot_loss_curve(losses, stage / "loss.png")
        write_json({
            "format": "graphcast-zero-training/1",
            "checkpoint": target.name,
            "dataset": str(setup.dataset_path.absolute()),
            "stats_dir": str(setup.stats_dir.absolute()),
            "steps": plan.steps, "learning_rate": plan.learning_rate,
            "batch_size": trained.batch_size, "devices": trained.num_devices,
            "iterations": total, "losses": losses,
            **environment_info(),
        }, stage / HISTORY)  # fmt: skip


def _history(path: Path) -> dict:
    """What an earlier run recorded in ``training.json``; empty when there is none to read."""
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text())
        if isinstance(record, dict):
            return record
    return {}


def _recorded_iterations(history: dict) -> int:
    """The iterations ``training.json`` says the weights have done (0 when it says none)."""
    iterations = history.get("iterations")
    return iterations if isinstance(iterations, int) and iterations > 0 else 0
