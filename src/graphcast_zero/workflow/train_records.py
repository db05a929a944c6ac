"""What a training run leaves in its folder, and what a resumed run reads back.

A checkpoint is the run folder's ``params.npz`` (the official format), ``optimizer_state.npz``
(the optimiser's moments and the iteration count), ``loss.png`` and ``training.json``: the plan
(curriculum, learning rate, batch, seed, data), every iteration's loss, the validation scores,
the data position (the loader's state for the next batch) and how long the loop waited for data.
They are written together (:func:`save_training`), every ``--checkpoint-every`` iterations and at
the end, by process 0 only when several processes train together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from graphcast_zero.checkpoint import Checkpoint

TRAINED = "params.npz"
OPTIMIZER_STATE = "optimizer_state.npz"
HISTORY = "training.json"
RECORD_FORMAT = "graphcast-zero-training/2"


@dataclasses.dataclass(frozen=True)
class DataWait:
    """Seconds the loop waited for batches and spent on steps (placing, computing), in all and
    without each phase's first iteration (which compiles)."""

    wait_s: float = 0.0
    step_s: float = 0.0
    steady_wait_s: float = 0.0
    steady_step_s: float = 0.0

    def add(self, wait: float, step: float, first_of_phase: bool) -> DataWait:
        steady = (0.0, 0.0) if first_of_phase else (wait, step)
        return DataWait(
            self.wait_s + wait,
            self.step_s + step,
            self.steady_wait_s + steady[0],
            self.steady_step_s + steady[1],
        )

    @property
    def fraction(self) -> float:
        """The share of the loop's time spent waiting for data."""
        return self.wait_s / max(self.wait_s + self.step_s, 1e-12)

    @property
    def steady_fraction(self) -> float:
        """The same share without the compiling iterations."""
        return self.steady_wait_s / max(self.steady_wait_s + self.steady_step_s, 1e-12)

    def record(self) -> dict:
        return {
            "wait_s": round(self.wait_s, 4),
            "step_s": round(self.step_s, 4),
            "fraction": round(self.fraction, 5),
            "fraction_without_compiling": round(self.steady_fraction, 5),
        }


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Where a run stands at a checkpoint.

    Attributes:
      params, opt_state: host copies of the weights and the optimiser state.
      iterations_done: iterations the weights have done, earlier runs' included.
      losses: this run's losses, one per iteration.
      validation: this run's validation scores (``{"iteration", "steps", "loss"}``).
      data_position: the loader's state for the next batch.
      data_wait: this run's time waiting for data.
    """

    params: Any
    opt_state: Any
    iterations_done: int
    losses: list[float]
    validation: list[dict]
    data_position: Optional[dict]
    data_wait: DataWait


def read_history(path: Path) -> dict:
    """What an earlier run recorded in ``training.json``; empty when there is none to read."""
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text())
        if isinstance(record, dict):
            return record
    return {}


def recorded_iterations(history: dict) -> int:
    """The iterations ``training.json`` says the weights have done (0 when it says none)."""
    iterations = history.get("iterations")
    return iterations if isinstance(iterations, int) and iterations > 0 else 0


def save_training(
    target: Path,
    start: Checkpoint,
    snapshot: Snapshot,
    record: dict,
    data_name: str,
) -> None:
    """Writes the checkpoint, the optimiser state, a loss chart and training.json together.

    Args:
      target: the checkpoint's path; the other files go beside it.
      start: the checkpoint training started from (its configs and description are kept).
      snapshot: where the run stands.
      record: the plan and inputs for ``training.json`` (plan, statistics, batch, devices).
      data_name: what the weights trained on, for the checkpoint's description.

    The histories continue the earlier runs' when resuming, cut to the iterations counted.
    """
    from graphcast_zero import plotting
    from graphcast_zero.atomic import write_json
    from graphcast_zero.checkpoint import save_checkpoint
    from graphcast_zero.optimizer_state import save_optimizer_state
    from graphcast_zero.workflow.run_folder import staged_folder
    from graphcast_zero.workflow.run_info import environment_info

    total = snapshot.iterations_done
    checkpoint = dataclasses.replace(
        start,
        params=snapshot.params,
        description=f"{start.description.split(' | ')[0]} | fine-tuned by graphcast_zero "
        f"run-training: {total} iterations on {data_name}",
    )
    earlier = read_history(target.parent / HISTORY)
    first = total - len(snapshot.losses)  # the iteration count this run started from
    losses = _list(earlier, "losses")[:first] + snapshot.losses
    scores = [v for v in _list(earlier, "validation") if v.get("iteration", 0) <= first]
    with staged_folder(target.parent) as stage:
        save_checkpoint(checkpoint, stage / target.name)
        save_optimizer_state(snapshot.opt_state, total, stage / OPTIMIZER_STATE)
        plotting.plot_loss_curve(losses, stage / "loss.png")
        write_json({
            "format": RECORD_FORMAT, "checkpoint": target.name, **record,
            "iterations": total, "losses": losses,
            "validation": scores + snapshot.validation,
            "data_position": snapshot.data_position,
            "data_wait": snapshot.data_wait.record(),
            **environment_info(),
        }, stage / HISTORY)  # fmt: skip


def _list(history: dict, key: str) -> list:
    value = history.get(key)
    return list(value) if isinstance(value, list) else []
