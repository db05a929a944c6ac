"""The training task: choose the inputs and the plan, build the predictor, train it, save it.

Each phase is one function: :func:`choose_training_inputs` (the starting checkpoint, the training
data (a dataset file, or an ERA5 store's windows, :mod:`~graphcast_zero.workflow.train_data`), the
statistics, the checkpoint to write, and the plan, new or continued,
:mod:`~graphcast_zero.workflow.train_plan`), :func:`build_training_predictor` and
:func:`train_predictor` (the loop of :mod:`graphcast_zero.train_loop` fed by the loader of
:mod:`graphcast_zero.loader`, with progress, validation and checkpoints written every
``--checkpoint-every`` iterations, :mod:`~graphcast_zero.workflow.train_records`).
:func:`run_training` chains them, first joining a multi-process job when asked
(:mod:`graphcast_zero.distributed`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from graphcast_zero import distributed, validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.errors import DistributedError, InputError
from graphcast_zero.memory import MemoryOptions
from graphcast_zero.paths import DataPaths, PathLike
from graphcast_zero.predictor import Predictor
from graphcast_zero.statistics import Statistics
from graphcast_zero.workflow.choosing import choose_params, newest_file, newest_run
from graphcast_zero.workflow.compile_cache import use_compilation_cache
from graphcast_zero.workflow.inputs import load_checked_statistics, load_setup
from graphcast_zero.workflow.options import Log, RandomModel, precision_option
from graphcast_zero.workflow.train_data import (
    Era5Training,
    FileData,
    TrainingData,
    check_file_data,
    open_store_data,
)
from graphcast_zero.workflow.train_plan import (
    PlanOptions,
    TrainingPlan,
    continued_plan,
    new_plan,
    recorded_plan,
)
from graphcast_zero.workflow.train_records import (
    HISTORY,
    OPTIMIZER_STATE,
    TRAINED,
    DataWait,
    read_history,
    recorded_iterations,
)

__all__ = ["HISTORY", "OPTIMIZER_STATE", "TRAINED"]


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How often a run scores its validation set and saves, and how far its loader reads ahead.

    Attributes:
      checkpoint_every: save every this many iterations (0: at the end only).
      validate_every: score the validation set every this many iterations (0: at the end only).
      prefetch: batches read ahead in background threads (0: read in the loop).
    """

    checkpoint_every: int = 0
    validate_every: int = 0
    prefetch: int = 2

    def check(self) -> None:
        for option in ("checkpoint_every", "validate_every", "prefetch"):
            if getattr(self, option) < 0:
                flag = option.replace("_", "-")
                raise InputError(f"--{flag} must be 0 or more, not {getattr(self, option)}")


@dataclasses.dataclass(frozen=True)
class TrainingFiles:
    """The options that choose what training starts from, trains on and writes.

    Attributes:
      params: checkpoint to start from (default: the newest in ``<data>/params``).
      random: start from random weights with the architecture ``random_model``.
      random_model: the architecture and seed of ``random`` weights (default ``RandomModel()``).
      dataset, stats_dir: training data and statistics (defaults from the data folder).
      era5: train on an ERA5 store's windows instead of a dataset file.
      output: the checkpoint to write (default ``<data>/outputs/<timestamp>-train/params.npz``).
      resume: continue from ``output`` (default: the newest trained checkpoint), with its
        optimiser state and, for an unfinished plan, its data position.
      reset_optimizer: with ``resume``, continue the weights but start the optimiser's moments
        afresh; the iteration count continues from ``training.json`` (0 without one).
    """

    params: Optional[PathLike] = None
    random: bool = False
    random_model: Optional[RandomModel] = None
    dataset: Optional[PathLike] = None
    stats_dir: Optional[PathLike] = None
    era5: Optional[Era5Training] = None
    output: Optional[PathLike] = None
    resume: bool = False
    reset_optimizer: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """What a training run starts from, trains on and writes, and its plan.

    Attributes:
      start: the checkpoint whose weights are trained.
      data: the training (and validation) windows.
      statistics, stats_dir: the normalisation statistics, checked against ``start``.
      target: the checkpoint to write; its folder receives the other files.
      plan: the plan this run follows.
      done: iterations the weights have done before this run.
      data_position: where the loader continues an unfinished plan (None: its beginning).
      resume: whether training continues ``target``.
      reset_optimizer: whether a resumed run starts the optimiser afresh.
    """

    start: Checkpoint
    data: TrainingData
    statistics: Statistics
    stats_dir: Path
    target: Path
    plan: TrainingPlan
    done: int = 0
    data_position: Optional[dict] = None
    resume: bool = False
    reset_optimizer: bool = False


@dataclasses.dataclass(frozen=True)
class TrainedWeights:
    """What the loop left: host parameters, optimiser state, losses and scores, and how it ran."""

    params: Any
    opt_state: Any
    losses: list[float]
    iterations_done: int  # all iterations, earlier runs' included
    num_devices: int
    batch_size: int
    validation: list[dict]
    data_wait: DataWait


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """Where the trained checkpoint went and how the loss went."""

    checkpoint_path: Path
    losses: list[float]
    iterations_done: int
    num_devices: int
    batch_size: int
    validation: list[dict] = dataclasses.field(default_factory=list)
    data_wait: DataWait = DataWait()


def run_training(
    paths: DataPaths,
    *,
    params: Optional[PathLike] = None,
    random: bool = False,
    random_model: Optional[RandomModel] = None,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    era5: Optional[Era5Training] = None,
    steps: Optional[int] = None,
    iterations: Optional[int] = None,
    learning_rate=None,
    batch_size: Optional[int] = None,
    plan: Optional[PlanOptions] = None,
    cadence: Cadence = Cadence(),
    precision: str = "auto",
    output: Optional[PathLike] = None,
    resume: bool = False,
    reset_optimizer: bool = False,
    processes: Optional[distributed.DistributedOptions] = None,
    memory: Optional[MemoryOptions] = None,
    progress: bool = True,
    log: Log = print,
) -> TrainingResult:
    """Trains the plan's iterations and saves a checkpoint in the official format.

    Args:
      paths: the data folder.
      params, random, random_model, dataset, stats_dir, era5: what to start from and train on,
        as in :class:`TrainingFiles`.
      steps, iterations, learning_rate, batch_size: a one-phase plan's options (they fill in the
        fields of ``plan`` left unset).
      plan: the plan's options (:class:`~graphcast_zero.workflow.train_plan.PlanOptions`).
      cadence: validation and checkpoint intervals, and read-ahead.
      precision: ``auto`` (bfloat16 on accelerators, float32 on CPUs), ``bfloat16`` or
        ``float32``.
      output, resume, reset_optimizer: where to write, whether to continue there and with
        which optimiser state (:class:`TrainingFiles`).
      processes: join a multi-process training job first (every process runs this function
        with its own ``process_id``; process 0 writes the files).
      memory: the grid chunks and rematerialisation fixed by the user; the rest of the memory
        plan is the cheapest that fits the device (``train_loop.choose_memory_plan``), recorded
        in training.json.
      progress: show a progress bar with the loss.
      log: where to print messages.

    Raises:
      InputError: for options or files that do not fit, before anything compiles; when resuming,
        also for a saved optimiser state that does not fit the model (see ``reset_optimizer``).
      DistributedError: another process of the job died or stopped answering.
    """
    if processes is not None:
        process = processes.process_id if processes.coordinator != distributed.AUTO else None
        name = f"train-process-{process if process is not None else os.getpid()}.log"
        distributed.send_native_logs_to(paths.cache / "logs" / name)
        distributed.initialize(processes)
    options = dataclasses.replace(
        plan or PlanOptions(),
        **{k: v for k, v in (("steps", steps), ("iterations", iterations),
                              ("learning_rate", learning_rate), ("batch_size", batch_size))
           if v is not None},
    )  # fmt: skip
    files = TrainingFiles(
        params=params, random=random, random_model=random_model, dataset=dataset,
        stats_dir=stats_dir, era5=era5, output=output, resume=resume,
        reset_optimizer=reset_optimizer,
    )  # fmt: skip
    try:
        return _train_and_save(paths, files, options, cadence, memory, precision, progress, log)
    except BaseException:
        if distributed.process_count() > 1:
            distributed.abandon_job()  # exit without JAX's shutdown, which peers cannot join
        raise


def _train_and_save(
    paths, files, options, cadence, memory, precision, progress, log
) -> TrainingResult:
    precision = precision_option(precision)
    cadence.check()
    memory = memory or MemoryOptions()
    memory.check()
    inputs = choose_training_inputs(paths, files, options)
    try:
        use_compilation_cache(paths.cache / "jax")
        predictor = build_training_predictor(paths, inputs, precision)
        writer = distributed.process_index() == 0
        log = log if writer else _quiet
        trained = train_predictor(
            predictor, inputs, cadence, memory, progress=progress and writer, log=log
        )
    finally:
        inputs.data.close()
    first, last = trained.losses[0], trained.losses[-1]
    ran = len(trained.losses)
    wait = trained.data_wait
    log(f"Loss {first:.4g} -> {last:.4g} over {ran} iterations ({trained.iterations_done} in "
        f"all) on {trained.num_devices} device(s); waited for data {100 * wait.fraction:.1f}% of "
        f"the loop's time ({wait.wait_s:.1f} s of {wait.wait_s + wait.step_s:.1f} s); "
        f"checkpoint: {inputs.target}")  # fmt: skip
    return TrainingResult(
        checkpoint_path=inputs.target, losses=trained.losses,
        iterations_done=trained.iterations_done, num_devices=trained.num_devices,
        batch_size=trained.batch_size, validation=trained.validation, data_wait=wait,
    )  # fmt: skip


def _quiet(message: str) -> None:
    """Processes other than 0 print nothing: process 0 speaks for the job."""


# -------------------------------------------------------------------------------- choose inputs


def choose_training_inputs(
    paths: DataPaths, files: TrainingFiles, options: Optional[PlanOptions] = None
) -> TrainingInputs:
    """The starting checkpoint, the checked data and statistics, the checkpoint to write and the
    plan. Everything is checked here, before anything compiles."""
    import jax

    options = options or PlanOptions()
    if files.params and files.random:
        raise InputError("--params and --random exclude each other: keep one")
    if files.resume and (files.params or files.random):
        raise InputError(
            "--resume continues the checkpoint named by --output: drop --params/--random"
        )
    if files.reset_optimizer and not files.resume:
        raise InputError("--reset-optimizer only applies with --resume: drop it or add --resume")
    if files.era5 and files.dataset:
        raise InputError("--source era5 reads a store, not --dataset: drop one of them")
    target = _training_output(paths, files.output, files.resume)
    history = read_history(target.parent / HISTORY) if files.resume else {}
    done = recorded_iterations(history)
    recorded = recorded_plan(history)
    devices = jax.device_count()
    if recorded is not None and done < recorded.end:  # an unfinished plan goes on exactly
        plan = continued_plan(options, recorded, target.parent)
        position = history.get("data_position")
    else:
        plan, position = new_plan(options, devices, first_iteration=done), None
    start = _starting_checkpoint(paths, files, target)
    data, statistics, stats_dir = _training_data(paths, files, start, plan, target)
    if position is not None and history.get("data") != data.record():
        raise InputError(
            f"--resume continues the unfinished run in {target.parent}, which trained on "
            f"{history.get('data')}: pass the same data options to continue it"
        )
    if distributed.process_index() == 0:  # the one process that writes
        validation.check_writable_folder(target.parent)
    return TrainingInputs(
        start=start, data=data, statistics=statistics, stats_dir=stats_dir, target=target,
        plan=plan, done=done, data_position=position, resume=files.resume,
        reset_optimizer=files.reset_optimizer,
    )  # fmt: skip


def _starting_checkpoint(paths: DataPaths, files: TrainingFiles, target: Path) -> Checkpoint:
    if files.resume:
        return load_checkpoint(target)
    if files.random:
        model = files.random_model or RandomModel()
        return model.checkpoint(*_random_grid(paths, files))
    return load_checkpoint(choose_params(paths, files.params))


def _training_data(
    paths: DataPaths, files: TrainingFiles, start: Checkpoint, plan: TrainingPlan, target: Path
) -> tuple[TrainingData, Statistics, Path]:
    task, steps = start.task_config, plan.curriculum.max_steps
    if files.era5 is not None:
        statistics, stats_dir = load_checked_statistics(paths, files.stats_dir, task)
        data = open_store_data(files.era5, start, steps, plan.batch_size)
        return data, statistics, stats_dir
    params = target if (files.random or files.resume) else files.params
    # The values are scanned once, by check_file_data, over every frame training can use.
    setup = load_setup(
        paths, params, files.dataset, files.stats_dir, steps, checkpoint=start, check_values=False
    )
    usable = check_file_data(setup.dataset, setup.dataset_path.name, task, steps)
    data = FileData(setup.dataset, setup.dataset_path, task, usable)
    return data, setup.statistics, setup.stats_dir


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
    return paths.outputs / f"{_run_time():%Y%m%d-%H%M%S}-train" / TRAINED


def _run_time() -> datetime.datetime:
    """Now, or process 0's now when several processes train: one run folder name for all."""
    now = datetime.datetime.now()
    if distributed.process_count() == 1:
        return now
    from jax.experimental import multihost_utils

    stamp = int(multihost_utils.broadcast_one_to_all(np.int64(now.timestamp())))
    return datetime.datetime.fromtimestamp(stamp)


def _random_grid(paths: DataPaths, files: TrainingFiles) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) random weights are built on: the store's grid, or the dataset's."""
    from graphcast_zero import sources
    from graphcast_zero.synthetic import grid

    if files.era5 is not None:
        if not files.era5.resolution:
            raise InputError("--random --source era5 needs --resolution (degrees, e.g. 1.0)")
        return grid(float(files.era5.resolution))
    path = (
        Path(files.dataset)
        if files.dataset
        else newest_file(paths.dataset, "*.nc", "dataset", "run `invoke fetch-data`")
    )
    with sources.open_dataset(path) as frame:
        return frame["lat"].values, frame["lon"].values


# ------------------------------------------------------------------------------ build and train


def build_training_predictor(paths: DataPaths, inputs: TrainingInputs, precision: str) -> Predictor:
    """The predictor of the starting checkpoint on the data's grid (graphs from the cache)."""
    from graphcast_zero.graph_cache import assemble_predictor

    predictor, _ = assemble_predictor(
        inputs.start.model_config, inputs.start.task_config, inputs.statistics,
        inputs.data.lat, inputs.data.lon,
        precision=precision, graphs_folder=paths.cache / "graphs",
    )  # fmt: skip
    return predictor


def train_predictor(
    predictor: Predictor,
    inputs: TrainingInputs,
    cadence: Cadence = Cadence(),
    memory: Optional[MemoryOptions] = None,
    *,
    progress: bool = True,
    log: Log = print,
) -> TrainedWeights:
    """Runs the plan's remaining iterations (or ``stop_after`` of them), scoring the validation
    set and saving checkpoints as ``cadence`` says, and saves the result. The memory plan is
    the cheapest that fits the device, keeping what ``memory`` fixes.

    A resumed run continues the optimiser state and iteration count saved beside the target, or
    with ``reset_optimizer`` fresh moments and the count ``training.json`` records.

    Raises:
      InputError: a resumed run's saved optimiser state does not fit (without
        ``reset_optimizer``), or is not at the iteration ``training.json`` records.
      DistributedError: another process of the job died or stopped answering.
    """
    from graphcast_zero import train_loop
    from graphcast_zero.workflow.train_session import TrainingSession

    memory = memory or MemoryOptions()
    session = TrainingSession(predictor, inputs, cadence, memory, progress=progress, log=log)
    try:
        result = train_loop.train(
            session.predictor, inputs.start.params, session.optimizer, session.opt_state,
            batches=session.batches, iterations=session.iterations,
            placement=session.placement, first_iteration=inputs.done,
            rate_scale=inputs.plan.rate_scale, on_iteration=session.after_iteration,
            compiled_steps=session.compiled_steps, constants=session.constants,
        )  # fmt: skip
    except Exception as error:
        if distributed.peer_failure(error):
            distributed.abandon_job()  # said here: the runtime's own fatal line stays in its log
            raise DistributedError(session.peer_failure_message(error)) from None
        raise
    finally:
        session.close()
    return session.finish(result)
