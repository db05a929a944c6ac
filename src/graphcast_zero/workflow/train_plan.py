"""The training plan: curriculum, learning rate, batch and seed, new or continued from a record.

A plan is fixed when a run starts and recorded in its ``training.json``. ``--resume`` continues an
unfinished plan exactly (the same schedule, learning rate, batch, seed and data, and the batches
from the recorded data position on); options not given are taken from the record, and options
given must agree with it. A finished plan is extended by a new plan that starts at the weights'
iteration count (``--resume --iterations 100``: a hundred more).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

from graphcast_zero.errors import InputError
from graphcast_zero.schedules import Curriculum, LearningRate, Phase, parse_steps_schedule
from graphcast_zero.train_loop import check_batch_size
from graphcast_zero.workflow.options import positive_number

DEFAULT_ITERATIONS = 10
DEFAULT_LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    """The options that define a plan, as given (None: not given).

    Attributes:
      steps, iterations: a one-phase plan (``--steps``, ``--iterations``); with a schedule,
        ``iterations`` stops this run after that many of the schedule's iterations.
      steps_schedule: the curriculum, ``steps:iterations,…``.
      learning_rate, lr_schedule, warmup_iterations, final_learning_rate: the learning rate
        (:class:`~graphcast_zero.schedules.LearningRate`).
      batch_size: windows per iteration over all devices (default: one per device).
      seed: the loader's shuffle seed.
    """

    steps: Optional[int] = None
    iterations: Optional[int] = None
    steps_schedule: Optional[str] = None
    learning_rate: Optional[Union[float, str]] = None
    lr_schedule: Optional[str] = None
    warmup_iterations: Optional[int] = None
    final_learning_rate: Optional[Union[float, str]] = None
    batch_size: Optional[int] = None
    seed: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """A fixed plan and where it stands.

    Attributes:
      curriculum: the phases.
      learning_rate: the schedule over the curriculum's iterations.
      batch_size: windows per iteration over all devices and processes.
      seed: the loader's shuffle seed.
      first_iteration: the weights' iteration count when the plan began.
      stop_after: stop this run after that many iterations (None: at the plan's end).
    """

    curriculum: Curriculum
    learning_rate: LearningRate
    batch_size: int
    seed: int = 0
    first_iteration: int = 0
    stop_after: Optional[int] = None

    @property
    def end(self) -> int:
        """The weights' iteration count when the plan is complete."""
        return self.first_iteration + self.curriculum.total

    def rate_scale(self, iteration: int) -> float:
        """The learning rate of the weights' 0-based ``iteration`` over the peak rate."""
        rate = self.learning_rate.at(iteration - self.first_iteration, self.curriculum.total)
        return rate / self.learning_rate.peak

    def steps_at(self, iteration: int) -> int:
        """The loss's steps in the weights' 0-based ``iteration``."""
        index, _ = self.curriculum.phase_at(iteration - self.first_iteration)
        return self.curriculum.phases[index].steps

    def record(self) -> dict:
        return {
            "schedule": self.curriculum.text(),
            "learning_rate": self.learning_rate.record(),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "first_iteration": self.first_iteration,
        }


def new_plan(options: PlanOptions, devices: int, first_iteration: int = 0) -> TrainingPlan:
    """The plan the options describe, starting at ``first_iteration``.

    Raises:
      InputError: contradictory or out-of-range options.
    """
    if options.iterations is not None and options.iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {options.iterations}")
    if options.steps is not None and options.steps < 1:
        raise InputError(f"--steps must be at least 1, not {options.steps}")
    stop_after = None
    if options.steps_schedule:
        if options.steps is not None:
            raise InputError("--steps and --steps-schedule exclude each other: keep one")
        curriculum = parse_steps_schedule(options.steps_schedule)
        stop_after = options.iterations
    else:
        phase = Phase(options.steps or 1, options.iterations or DEFAULT_ITERATIONS)
        curriculum = Curriculum((phase,))
    peak = positive_number(
        DEFAULT_LEARNING_RATE if options.learning_rate is None else options.learning_rate,
        "--learning-rate",
    )
    final = float(options.final_learning_rate or 0.0)
    rate = LearningRate(peak, options.lr_schedule or "constant", options.warmup_iterations or 0,
                        final)  # fmt: skip
    batch_size = options.batch_size or devices
    check_batch_size(batch_size, devices)
    return TrainingPlan(curriculum, rate, batch_size, options.seed or 0, first_iteration,
                        stop_after)  # fmt: skip


def recorded_plan(history: dict) -> Optional[TrainingPlan]:
    """The plan ``training.json`` recorded, or None when it holds none (an older run)."""
    plan = history.get("plan")
    try:
        return TrainingPlan(
            curriculum=parse_steps_schedule(plan["schedule"]),
            learning_rate=LearningRate(**plan["learning_rate"]),
            batch_size=int(plan["batch_size"]),
            seed=int(plan["seed"]),
            first_iteration=int(plan["first_iteration"]),
        )
    except (TypeError, KeyError, ValueError):
        return None


def continued_plan(options: PlanOptions, recorded: TrainingPlan, folder: Path) -> TrainingPlan:
    """The recorded plan, for a run that continues it; ``iterations`` stops this run early.

    Raises:
      InputError: an option given disagrees with the record.
    """
    if options.iterations is not None and options.iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {options.iterations}")
    phases, rate = recorded.curriculum.phases, recorded.learning_rate
    checks = [
        ("--steps-schedule", options.steps_schedule,
         lambda v: parse_steps_schedule(v) == recorded.curriculum),
        ("--steps", options.steps, lambda v: len(phases) == 1 and phases[0].steps == v),
        ("--learning-rate", options.learning_rate,
         lambda v: positive_number(v, "--learning-rate") == rate.peak),
        ("--lr-schedule", options.lr_schedule, lambda v: v == rate.schedule),
        ("--warmup-iterations", options.warmup_iterations, lambda v: v == rate.warmup),
        ("--final-learning-rate", options.final_learning_rate, lambda v: float(v) == rate.final),
        ("--batch-size", options.batch_size, lambda v: v == recorded.batch_size),
        ("--seed", options.seed, lambda v: v == recorded.seed),
    ]  # fmt: skip
    for option, value, agrees in checks:
        if value is not None and not agrees(value):
            raise InputError(
                f"--resume continues the unfinished run in {folder}, planned with another "
                f"{option} than {value}: drop {option} to continue it as planned, or start a new "
                "run without --resume"
            )
    return dataclasses.replace(recorded, stop_after=options.iterations)
