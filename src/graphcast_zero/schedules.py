"""Training schedules: the loss's steps per iteration (the curriculum) and the learning rate.

A :class:`Curriculum` is a list of phases, each a number of autoregressive steps in the loss and
the iterations trained with it: ``1:1000,2:300,3:300`` trains 1000 iterations on one-step windows,
then 300 on two-step windows, and so on, as GraphCast's paper grows the rollout during
fine-tuning. A :class:`LearningRate` is a peak rate reached by a linear warm-up from 0 and then
held (``constant``) or brought down along a half cosine (``cosine``) to a final rate at the end of
the plan, the shape of the paper's schedule. Both are pure values: they are read from options
here and evaluated at an iteration index; nothing touches files or devices.
"""

from __future__ import annotations

import dataclasses
import math

from graphcast_zero.errors import InputError

SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class Phase:
    """``iterations`` optimiser steps with ``steps`` autoregressive steps in the loss."""

    steps: int
    iterations: int


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """The phases of a training plan, trained one after the other."""

    phases: tuple[Phase, ...]

    @property
    def total(self) -> int:
        return sum(phase.iterations for phase in self.phases)

    @property
    def max_steps(self) -> int:
        return max(phase.steps for phase in self.phases)

    def phase_at(self, iteration: int) -> tuple[int, int]:
        """(index of the phase that runs the 0-based ``iteration``, that phase's first iteration).

        An iteration past the end belongs to the last phase.
        """
        start = 0
        for index, phase in enumerate(self.phases):
            if iteration < start + phase.iterations or index == len(self.phases) - 1:
                return index, start
            start += phase.iterations
        raise AssertionError("a curriculum has at least one phase")

    def text(self) -> str:
        """The ``--steps-schedule`` text that gives this curriculum."""
        return ",".join(f"{phase.steps}:{phase.iterations}" for phase in self.phases)


def parse_steps_schedule(text: str) -> Curriculum:
    """``"1:1000,2:300"`` as a :class:`Curriculum`.

    Raises:
      InputError: the text is not comma-separated ``steps:iterations`` pairs of positive integers.
    """
    phases = []
    for part in str(text).replace(" ", "").split(","):
        steps, _, iterations = part.partition(":")
        if not (steps.isdigit() and iterations.isdigit() and int(steps) and int(iterations)):
            raise InputError(
                f"--steps-schedule {text!r}: {part!r} is not steps:iterations with both at least "
                "1; write e.g. 1:1000,2:300,3:300"
            )
        phases.append(Phase(int(steps), int(iterations)))
    return Curriculum(tuple(phases))


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """A learning-rate schedule over a plan of ``total`` iterations.

    Attributes:
      peak: the rate after the warm-up.
      schedule: ``constant`` (hold the peak) or ``cosine`` (half-cosine decay from the peak at the
        end of the warm-up to ``final`` at the plan's last iteration).
      warmup: iterations of linear increase from 0 to the peak (0: start at the peak).
      final: the rate a cosine schedule ends at.
    """

    peak: float
    schedule: str = "constant"
    warmup: int = 0
    final: float = 0.0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"--lr-schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}"
            )
        if self.warmup < 0:
            raise InputError(f"--warmup-iterations must be 0 or more, not {self.warmup}")
        if not 0 <= self.final <= self.peak:
            raise InputError(
                f"--final-learning-rate {self.final:g} must lie between 0 and --learning-rate "
                f"{self.peak:g}"
            )

    @property
    def is_constant(self) -> bool:
        """Whether every iteration uses the peak rate."""
        return self.schedule == "constant" and self.warmup == 0

    def at(self, iteration: int, total: int) -> float:
        """The rate of the 0-based ``iteration`` of a plan of ``total`` iterations."""
        if iteration < self.warmup:
            return self.peak * iteration / self.warmup
        if self.schedule == "constant":
            return self.peak
        span = max(total - self.warmup, 1)
        progress = min((iteration - self.warmup) / span, 1.0)
        return self.final + (self.peak - self.final) * 0.5 * (1 + math.cos(math.pi * progress))

    def record(self) -> dict:
        """The schedule as ``training.json`` records it."""
        return dataclasses.asdict(self)
