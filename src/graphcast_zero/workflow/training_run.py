"""The training task: pick a starting checkpoint, train it, save it in the official format.

The loop itself lives in :mod:`graphcast_zero.trainer`; this module wires options, files and
progress around it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from graphcast_zero import validation
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths
from graphcast_zero.workflow.files import (
    Log,
    PathLike,
    choose_params,
    environment_info,
    load_setup,
    newest_file,
    newest_run,
    precision_option,
    staged_folder,
    use_compilation_cache,
    write_json,
)


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """Where the trained checkpoint went and how the loss went."""

    checkpoint_path: Path
    losses: list[float]
    iterations_done: int
    num_devices: int
    batch_size: int


def random_checkpoint(
    lat, lon, mesh_size: int = 4, latent_size: int = 32, gnn_msg_steps: int = 4,
    hidden_layers: int = 1, levels: int = 13, seed: int = 0,
) -> Checkpoint:  # fmt: skip
    """An untrained model like the official notebook's random one (resolution 0 fits any grid)."""
    from graphcast_zero.config import TASK_13, TASK_37, ModelConfig
    from graphcast_zero.model.graphcast import init_params

    if levels not in (13, 37):
        raise InputError(f"--levels must be 13 or 37, not {levels}")
    for option, value in (("mesh-size", mesh_size), ("latent-size", latent_size),
                          ("gnn-msg-steps", gnn_msg_steps), ("hidden-layers", hidden_layers)):  # fmt: skip
        if value < 1:
            raise InputError(f"--{option} must be at least 1, not {value}")
    model = ModelConfig(
        resolution=0.0,
        mesh_size=mesh_size,
        latent_size=latent_size,
        gnn_msg_steps=gnn_msg_steps,
        hidden_layers=hidden_layers,
        radius_query_fraction_edge_length=0.6,
    )
    task = TASK_13 if levels == 13 else TASK_37
    return Checkpoint(
        params=init_params(model, task, lat, lon, seed),
        model_config=model,
        task_config=task,
        description=f"Random, untrained GraphCast weights (seed {seed}), graphcast_zero run-training",
        license="Random weights: no licence restrictions (CC0).",
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


TRAINED = "params.npz"
OPTIMIZER_STATE = "optimizer_state.npz"


def run_training(
    paths: DataPaths,
    params: Optional[PathLike] = None,
    random: bool = False,
    dataset: Optional[PathLike] = None,
    stats_dir: Optional[PathLike] = None,
    steps: int = 1,
    iterations: int = 10,
    learning_rate: Union[float, str] = 1e-3,
    output: Optional[PathLike] = None,
    resume: bool = False,
    batch_size: Optional[int] = None,
    precision: str = "auto",
    random_options: Optional[dict] = None,
    progress: bool = True,
    log: Log = print,
    grid_chunks: int = 0,
    remat: str = "auto",
) -> TrainingResult:
    """Trains for ``iterations`` optimiser steps and saves a checkpoint in the official format.

    Args:
      paths: the data folder.
      params: checkpoint to start from (default: the newest in ``<data>/params``).
      random: start from random weights (``random_options``: mesh_size, latent_size,
        gnn_msg_steps, hidden_layers, levels, seed).
      dataset, stats_dir: training data and statistics (defaults from the data folder).
      steps: autoregressive steps in the loss.
      iterations: optimiser steps to run.
      learning_rate: AdamW's rate.
      output: the checkpoint to write (default ``<data>/outputs/<timestamp>-train/params.npz``).
      resume: continue from ``output`` (default: the newest trained checkpoint), with its
        optimiser state.
      batch_size: windows per step (default: one per device); a multiple of the device count.
      precision: ``auto`` (bfloat16 on accelerators, float32 on CPUs), ``bfloat16`` or
        ``float32``.
      progress: show a progress bar with the loss.
      log: where to print messages.
      grid_chunks, remat: the memory plan (``memory``): chunks of grid nodes (0: choose) and
        rematerialisation (``auto``: choose, ``off``, ``steps``, ``processor`` or ``all``);
        the first plan that fits the device is taken, and recorded in training.json.
    """
    import jax
    from tqdm.auto import tqdm

    from graphcast_zero import trainer, training
    from graphcast_zero.graph_cache import load_or_build_graphs
    from graphcast_zero.predictor import build_predictor

    precision = precision_option(precision)
    _check_memory_options(grid_chunks, remat)
    if iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {iterations}")
    learning_rate = _positive_number(learning_rate, "--learning-rate")
    if params and random:
        raise InputError("--params and --random exclude each other: keep one")
    if resume and (params or random):
        raise InputError(
            "--resume continues the checkpoint named by --output: drop --params/--random"
        )
    target = _training_output(paths, output, resume)
    start = _starting_checkpoint(paths, params, random, dataset, resume, target, random_options)
    setup = load_setup(
        paths, params if not (random or resume) else target, dataset, stats_dir, steps, start
    )
    validation.check_finite(
        setup.dataset,
        start.task_config,
        validation.available_steps(setup.dataset, start.task_config),
        setup.dataset_path.name,
    )
    validation.check_writable_folder(target.parent)
    use_compilation_cache(paths.cache / "jax")
    lat, lon = setup.dataset["lat"].values, setup.dataset["lon"].values
    graphs, _ = load_or_build_graphs(paths.cache / "graphs", start.model_config, lat, lon)
    predictor = build_predictor(
        start.model_config,
        start.task_config,
        setup.statistics,
        lat,
        lon,
        precision=precision,
        graphs=graphs,
    )
    placement = trainer.Placement.over_all_devices()
    batch_size = batch_size or placement.num_devices
    trainer.check_batch_size(batch_size, placement.num_devices)
    windows = trainer.time_windows(setup.dataset, predictor, steps)
    optimizer = training.default_optimizer(learning_rate)
    opt_state, done = optimizer.init(start.params), 0
    if resume:
        opt_state, done = trainer.load_optimizer_state(target.parent / OPTIMIZER_STATE, opt_state)
    choice, compiled_step = trainer.choose_memory_plan(
        predictor, start.params, optimizer, opt_state, windows, batch_size, placement,
        grid_chunks or None, remat,
    )  # fmt: skip
    predictor = dataclasses.replace(predictor, memory=choice.plan)
    bar = tqdm(total=iterations, desc="training", unit="it", disable=not progress)

    def report(iteration: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    try:
        result = trainer.train(predictor, start.params, optimizer, opt_state, windows, iterations,
                               batch_size, placement, first_iteration=done, on_iteration=report,
                               compiled_step=compiled_step)  # fmt: skip
    finally:
        bar.close()
    total = done + iterations
    trained = dataclasses.replace(
        start,
        params=jax.tree.map(np.asarray, result.params),
        description=f"{start.description.split(' | ')[0]} | fine-tuned by graphcast_zero run-training: "
        f"{total} iterations on {setup.dataset_path.name}",
    )
    if jax.process_index() == 0:  # one writer when several hosts train together
        _save_training(
            target, trained, result, total, setup, steps, learning_rate, batch_size, placement,
            choice.as_json(),
        )  # fmt: skip
    log(f"Loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g} over {iterations} iterations "
        f"({total} in all) on {placement.num_devices} device(s); checkpoint: {target}")  # fmt: skip
    return TrainingResult(target, result.losses, total, placement.num_devices, batch_size)


def _starting_checkpoint(
    paths, params, random, dataset, resume, target, random_options
) -> Checkpoint:
    if resume:
        return load_checkpoint(target)
    if not random:
        return load_checkpoint(choose_params(paths, params))
    # The random model is built on the dataset's grid (any grid fits a resolution-0 model).
    path = (
        Path(dataset)
        if dataset
        else newest_file(paths.dataset, "*.nc", "dataset", "run `invoke fetch-data`")
    )
    frame = validation.open_dataset(path)
    return random_checkpoint(frame["lat"].values, frame["lon"].values, **(random_options or {}))


def _save_training(
    target, trained, result, total, setup, steps, learning_rate, batch_size, placement, plan
):
    """Writes the checkpoint, the optimiser state, a loss chart and training.json."""
    from graphcast_zero import plotting, trainer
    from graphcast_zero.checkpoint import save_checkpoint

    history_path = target.parent / "training.json"
    previous = []
    if history_path.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError):
            previous = json.loads(history_path.read_text())["losses"]
    losses = previous[: total - len(result.losses)] + result.losses
    with staged_folder(target.parent) as stage:
        save_checkpoint(trained, stage / target.name)
        trainer.save_optimizer_state(result.opt_state, total, stage / OPTIMIZER_STATE)
        plotting.plot_loss_curve(losses, stage / "loss.png")
        write_json({
            "format": "graphcast-zero-training/1",
            "checkpoint": target.name,
            "dataset": str(setup.dataset_path.absolute()),
            "stats_dir": str(setup.stats_dir.absolute()),
            "steps": steps, "learning_rate": learning_rate, "batch_size": batch_size,
            "devices": placement.num_devices, "iterations": total, "losses": losses,
            "memory": plan, **environment_info(),
        }, stage / "training.json")  # fmt: skip


def _check_memory_options(grid_chunks: int, remat: str) -> None:
    from graphcast_zero.memory import REMAT_CHOICES

    if grid_chunks < 0:
        raise InputError(f"--chunks must be 0 (choose) or more, not {grid_chunks}")
    if remat not in REMAT_CHOICES:
        raise InputError(f"--remat must be one of {', '.join(REMAT_CHOICES)}, not {remat!r}")


def _positive_number(value, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise InputError(f"{option} must be a positive number, not {value!r}")
    return number
