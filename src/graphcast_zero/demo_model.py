"""The demo model that ships with the package: trained on the synthetic generator, labelled SYNTHETIC.

The demo architecture (:data:`graphcast_zero.config.DEMO_MODEL`) is trained from random weights
on windows cut from :func:`graphcast_zero.synthetic.make_example_dataset` at many seeds and dates, so
it learns the generator's dynamics (travelling waves, the diurnal and seasonal cycles, moisture
and rain following the vertical motion) rather than one trajectory. The demo's own data (seed 0,
2022-01-01) is never among them, so its forecast beating persistence there is a test of
generalisation. Everything is seeded: :func:`train_demo_model` with :data:`RECIPE` gives the
shipped weights again (bit for bit on the same CPU and software, to float32 rounding elsewhere).
``scripts/train_demo_model.py`` runs it and writes the checkpoint and its training record into
``graphcast_zero/weights/``; the demo bundle copies that checkpoint into a data folder.

The model has learned an analytic toy atmosphere, not the weather: it is for demos and tests.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from graphcast_zero import synthetic, train_loop
from graphcast_zero.atomic import write_json
from graphcast_zero.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from graphcast_zero.config import DEMO_MODEL
from graphcast_zero.errors import CheckpointError
from graphcast_zero.statistics import Statistics

WEIGHTS_FOLDER = "weights"  # inside the package, shipped as package data
WEIGHTS_FILE = "demo_synthetic_trained.npz"
RECORD_FILE = "demo_synthetic_trained.json"
RECORD_FORMAT = "graphcast-zero-demo-model/1"
SCRIPT = "scripts/train_demo_model.py"
# Lead times (hours) at which the record scores the shipped model's forecast of the demo data.
SCORED_LEAD_HOURS = (24, 48)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the shipped weights are trained; every field is recorded beside them.

    Attributes:
      iterations: optimiser steps, one window each.
      peak_learning_rate: AdamW's rate after the warm-up.
      warmup: iterations of linear warm-up from zero.
      final_learning_rate: where the cosine decay after the warm-up ends.
      seed: seeds the initial weights and the stream of (generator seed, date) pairs.
      loss_steps: autoregressive steps in the loss.
      windows_per_trajectory: consecutive windows cut from one generated trajectory; 4 start the
        forecast at 06, 12, 18 and 00 UTC, so every time of day is seen.
      first_date, last_date: trajectories start at 00 UTC on a day drawn uniformly from this range
        (it ends before the demo's 2022-01-01).
    """

    iterations: int = 2000
    peak_learning_rate: float = 1e-3
    warmup: int = 100
    final_learning_rate: float = 5e-5
    seed: int = 1
    loss_steps: int = 1
    windows_per_trajectory: int = 4
    first_date: str = "1979-01-01"
    last_date: str = "2021-12-31"


RECIPE = Recipe()


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained checkpoint and the loss before each of its optimiser steps."""

    checkpoint: Checkpoint
    losses: list[float]


def trajectory_setting(recipe: Recipe, index: int) -> tuple[int, str]:
    """The generator seed (never the demo's 0) and start date of trajectory ``index``.

    Each index has its own random stream, so any window can be made without the ones before it.
    """
    rng = np.random.default_rng([recipe.seed, index])
    first, last = np.datetime64(recipe.first_date, "D"), np.datetime64(recipe.last_date, "D")
    day = first + np.timedelta64(int(rng.integers(0, (last - first).astype(int) + 1)), "D")
    return int(rng.integers(1, 2**31)), str(day)


class SyntheticWindows(Sequence):
    """Training windows made on demand from the generator, ``windows_per_trajectory`` a trajectory.

    A window takes ~4 MB, so the recipe's 2000 would take 8 GB at once; this sequence keeps one
    trajectory's windows in memory and serves ``train_loop.train``, which reads them in order.
    """

    def __init__(self, recipe: Recipe, predictor, count: int):
        self.recipe, self.predictor, self.count = recipe, predictor, count
        self._cached: tuple[int, list[train_loop.Window]] = (-1, [])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> train_loop.Window:
        if not 0 <= index < self.count:
            raise IndexError(index)
        trajectory, offset = divmod(index, self.recipe.windows_per_trajectory)
        if self._cached[0] != trajectory:
            self._cached = (trajectory, self._windows_of(trajectory))
        return self._cached[1][offset]

    def _windows_of(self, trajectory: int) -> list[train_loop.Window]:
        seed, date = trajectory_setting(self.recipe, trajectory)
        steps = self.recipe.loss_steps + self.recipe.windows_per_trajectory - 1
        dataset = synthetic.make_example_dataset(
            synthetic.DEMO_RESOLUTION, steps, 13, date=date, seed=seed
        )
        return train_loop.time_windows(dataset, self.predictor, self.recipe.loss_steps)


def demo_statistics() -> Statistics:
    """The statistics the demo bundle writes (same generator call), as the model reads them."""
    stats = synthetic.make_statistics(synthetic.DEMO_RESOLUTION, synthetic.DEMO_STEPS, seed=0)
    return Statistics(
        mean=stats["mean_by_level"],
        stddev=stats["stddev_by_level"],
        diffs_stddev=stats["diffs_stddev_by_level"],
    )


def demo_predictor(checkpoint: Checkpoint):
    """The model on the demo grid with the demo statistics, in float32 (reproducible on CPUs)."""
    from graphcast_zero.predictor import build_predictor

    lat, lon = synthetic.grid(synthetic.DEMO_RESOLUTION)
    return build_predictor(
        checkpoint.model_config,
        checkpoint.task_config,
        demo_statistics(),
        lat,
        lon,
        precision="float32",
    )


def initial_checkpoint(seed: int) -> Checkpoint:
    """The random weights a training run starts from, on the demo grid."""
    return synthetic.random_checkpoint(
        DEMO_MODEL.model_config,
        DEMO_MODEL.task_config,
        *synthetic.grid(synthetic.DEMO_RESOLUTION),
        seed=seed,
        description=f"SYNTHETIC demo checkpoint: random, untrained weights (seed {seed}), the "
        "start of the demo model's training.",
    )


def learning_rate_schedule(recipe: Recipe):
    """Linear warm-up to the peak rate, then a cosine decay to the final rate."""
    import optax

    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=recipe.peak_learning_rate,
        warmup_steps=recipe.warmup,
        decay_steps=recipe.iterations,
        end_value=recipe.final_learning_rate,
    )


def describe(recipe: Recipe) -> str:
    """The checkpoint's description: what it is, what it learned from and how to remake it."""
    return (
        "SYNTHETIC demo model: GraphCast's demo architecture trained on synthetic analytic fields "
        "from graphcast_zero.demo (not ERA5, not a weather model), for demos and tests only. "
        f"Trained by {SCRIPT}: {recipe.iterations} iterations of a {recipe.loss_steps}-step "
        f"loss, seed {recipe.seed}, AdamW peak rate {recipe.peak_learning_rate:g} with "
        f"{recipe.warmup} warm-up iterations and a cosine decay to "
        f"{recipe.final_learning_rate:g}, on generator seeds 1 and up and dates "
        f"{recipe.first_date} to {recipe.last_date}."
    )


def train_demo_model(
    recipe: Recipe = RECIPE,
    iterations: Optional[int] = None,
    on_iteration: Optional[Callable[[int, float], None]] = None,
) -> TrainedModel:
    """Trains the demo architecture from random weights as ``recipe`` says.

    Args:
      recipe: the training recipe (:data:`RECIPE` made the shipped weights).
      iterations: stop after this many of the recipe's iterations (the learning-rate schedule
        stays the full recipe's), to check the start of a run against the recorded losses.
      on_iteration: called as ``on_iteration(iteration, loss)`` after each step, for progress.

    Returns:
      The trained checkpoint (numpy parameters) and the loss before each step.
    """
    import jax

    start = initial_checkpoint(recipe.seed)
    predictor = demo_predictor(start)
    optimizer = train_loop.default_optimizer(learning_rate_schedule(recipe))
    params = jax.tree.map(jax.numpy.asarray, start.params)
    count = recipe.iterations if iterations is None else min(iterations, recipe.iterations)
    result = train_loop.train(
        predictor,
        params,
        optimizer,
        optimizer.init(params),
        windows=SyntheticWindows(recipe, predictor, count),
        iterations=count,
        batch_size=1,
        placement=train_loop.Placement.over_all_devices(),
        on_iteration=on_iteration,
    )
    checkpoint = dataclasses.replace(
        start,
        params=jax.tree.map(np.asarray, result.params),
        description=describe(recipe),
        license="Trained only on data generated by graphcast_zero.demo: no licence restrictions "
        "(CC0).",
    )
    return TrainedModel(checkpoint, result.losses)


def demo_scores(checkpoint: Checkpoint, steps: int = synthetic.DEMO_STEPS):
    """Scores a forecast of the demo data (seed 0, 2022-01-01) and persistence against its truth.

    Returns:
      An :class:`graphcast_zero.evaluation.Evaluation` over ``steps`` 6-hour lead times.
    """
    import jax

    from graphcast_zero import evaluation
    from graphcast_zero.forecast import forecast_dataset

    dataset = synthetic.make_example_dataset(synthetic.DEMO_RESOLUTION, synthetic.DEMO_STEPS, 13)
    params = jax.tree.map(jax.numpy.asarray, checkpoint.params)
    predictions, targets, inputs = forecast_dataset(
        demo_predictor(checkpoint), params, dataset, steps
    )
    return evaluation.evaluate(predictions, targets, last_inputs=inputs)


def shipped_path() -> Path:
    """The trained checkpoint inside the installed package."""
    return Path(str(importlib.resources.files("graphcast_zero") / WEIGHTS_FOLDER / WEIGHTS_FILE))


def shipped_checkpoint() -> Checkpoint:
    """The trained SYNTHETIC checkpoint that ships with the package.

    Raises:
      CheckpointError: when the package lacks it (an install without its package data).
    """
    path = shipped_path()
    if not path.is_file():
        raise CheckpointError(
            f"{path}: the demo model's weights are missing from the package; reinstall "
            f"graphcast-zero (pip install -e .) or remake them with `python {SCRIPT}`"
        )
    return load_checkpoint(path)


def shipped_record() -> dict[str, Any]:
    """The record written beside the shipped weights: recipe, losses, scores, time, software."""
    return json.loads(shipped_path().with_name(RECORD_FILE).read_text(encoding="utf-8"))


def training_record(model: TrainedModel, recipe: Recipe, scores, seconds: float) -> dict:
    """What :func:`write_trained_model` stores beside the checkpoint.

    Args:
      model: the trained checkpoint and its losses.
      recipe: the recipe it was trained with.
      scores: its :func:`demo_scores`.
      seconds: the training's wall-clock time.
    """
    from graphcast_zero import evaluation

    return {
        "format": RECORD_FORMAT,
        "checkpoint": WEIGHTS_FILE,
        "model": DEMO_MODEL.key,
        "script": SCRIPT,
        "recipe": dataclasses.asdict(recipe),
        "training_seconds": round(seconds, 1),
        "losses": model.losses,
        "skill_vs_persistence": {
            f"{hours}h": evaluation.skill_vs_persistence(scores, hours)
            for hours in SCORED_LEAD_HOURS
        },
    }


def write_trained_model(model: TrainedModel, record: dict, folder: Path) -> list[Path]:
    """Writes the checkpoint and its record (JSON) into ``folder``, each atomically."""
    checkpoint = save_checkpoint(model.checkpoint, Path(folder) / WEIGHTS_FILE)
    return [checkpoint, write_json(record, Path(folder) / RECORD_FILE)]
