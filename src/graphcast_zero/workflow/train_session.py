"""One training run around the loop: optimiser state, loader, progress, validation, checkpoints.

:class:`TrainingSession` prepares what :func:`graphcast_zero.train_loop.train` needs (the device
mesh, the optimiser and its state, the batches from the recorded data position) and is the loop's
``on_iteration`` hook: it counts the time spent waiting for data, updates the progress bar,
scores the validation set and writes checkpoints at the plan's intervals. Files are written here,
on the workflow's side, never inside the loop, and only by process 0.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from graphcast_zero import distributed
from graphcast_zero.errors import InputError
from graphcast_zero.workflow.options import Log
from graphcast_zero.workflow.train_records import OPTIMIZER_STATE, DataWait, Snapshot, save_training


class TrainingSession:
    """The state of one run of ``run-training`` (see the module docstring).

    Raises:
      InputError: a resumed optimiser state does not fit, or is not at the recorded iteration.
    """

    def __init__(
        self, predictor, inputs, cadence, memory, *, progress: bool = True, log: Log = print
    ):
        import jax
        from tqdm.auto import tqdm

        from graphcast_zero import train_loop
        from graphcast_zero.loader import CurriculumBatches

        self.inputs, self.cadence, self.log = inputs, cadence, log
        plan = inputs.plan
        self.placement = train_loop.Placement.over_all_devices()
        train_loop.check_batch_size(plan.batch_size, self.placement.num_devices)
        self.optimizer = train_loop.default_optimizer(plan.learning_rate.peak)
        self.opt_state = self._optimizer_state()
        remaining = plan.end - inputs.done
        self.iterations = min(remaining, plan.stop_after or remaining)
        self.processes = (jax.process_index(), jax.process_count())
        self.batches = CurriculumBatches(
            plan.curriculum, inputs.data.windows, plan.batch_size, seed=plan.seed,
            process_index=self.processes[0], process_count=self.processes[1],
            prefetch=cadence.prefetch, position=self._position(),
        )  # fmt: skip
        self.predictor, self.memory, self.compiled_steps = self._memory_plan(predictor, memory)
        # Placed once, for the loop and for validation.
        self.constants = self.placement.replicated(self.predictor.constants())
        self.validating = inputs.data.validation(1) is not None
        self.losses: list[float] = []
        self.scores: list[dict] = []
        self.wait = DataWait()
        self.saved_at: Optional[int] = None
        self.reached = inputs.done
        self._evaluate = None
        self.bar = tqdm(total=self.iterations, desc="training", unit="it", disable=not progress)

    # ------------------------------------------------------------------------------- start

    def _optimizer_state(self):
        from graphcast_zero.optimizer_state import load_optimizer_state

        inputs = self.inputs
        state = self.optimizer.init(inputs.start.params)
        if not inputs.resume or inputs.reset_optimizer:
            return state
        path = inputs.target.parent / OPTIMIZER_STATE
        state, saved = load_optimizer_state(path, state)
        if saved != inputs.done:
            raise InputError(
                f"optimizer state {path} is at iteration {saved} but training.json records "
                f"{inputs.done}: pass --reset-optimizer to continue the weights with fresh "
                "optimiser moments"
            )
        return state

    def _memory_plan(self, predictor, options):
        """(the predictor with the cheapest memory plan that fits, the choice, the compiled step
        to reuse): chosen for the plan's longest loss, which needs the most memory. Every
        process takes process 0's choice: one program for the whole job."""
        import dataclasses

        from graphcast_zero import memory, train_loop
        from graphcast_zero.loader import stack_windows

        plan, processes = self.inputs.plan, self.processes[1]
        steps = plan.curriculum.max_steps
        windows = self.inputs.data.windows(steps)
        local = plan.batch_size // processes
        # Only the shapes matter here (candidates are compiled, not run): one window read, not a
        # batch of them, each of which may be a read from a remote store.
        batch = stack_windows([windows[0]] * local)
        choice, compiled = train_loop.choose_memory_plan(
            predictor, self.inputs.start.params, self.optimizer, self.opt_state, batch,
            self.placement, options.grid_chunks or None, options.remat,
        )  # fmt: skip
        if processes > 1:
            agreed = memory.agree_across_processes(choice)
            compiled = compiled if agreed.plan == choice.plan else None
            choice = agreed
        predictor = dataclasses.replace(predictor, memory=choice.plan)
        return predictor, choice, {steps: compiled} if compiled is not None else {}

    def _position(self) -> Optional[dict]:
        position, plan = self.inputs.data_position, self.inputs.plan
        if position is None:
            return None
        index, _ = plan.curriculum.phase_at(self.inputs.done - plan.first_iteration)
        if not isinstance(position, dict) or position.get("phase") not in (index, index - 1):
            raise InputError(
                f"training.json in {self.inputs.target.parent} holds no data position for "
                f"iteration {self.inputs.done}: start a new run, or --resume --reset-optimizer"
            )
        return position

    # ---------------------------------------------------------------------------- the hook

    def after_iteration(self, state) -> None:
        """The loop's ``on_iteration``: counts, shows, scores and saves."""
        plan, cadence = self.inputs.plan, self.cadence
        index = state.iteration - 1
        _, phase_start = plan.curriculum.phase_at(index - plan.first_iteration)
        compiling = index == self.inputs.done or index - plan.first_iteration == phase_start
        self.wait = self.wait.add(state.data_wait_s, state.step_s, compiling)
        self.losses.append(state.loss)
        self.reached = state.iteration
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{state.loss:.4g}", data_wait=f"{100 * self.wait.fraction:.0f}%")
        if (
            self.validating
            and cadence.validate_every
            and not state.iteration % cadence.validate_every
        ):
            self.scores.append(self.validate(state.params, state.iteration))
        last = self.inputs.done + self.iterations
        if cadence.checkpoint_every and not state.iteration % cadence.checkpoint_every:
            if state.iteration < last:  # the last one is saved by finish(), after scoring
                self.save(state.params, state.opt_state, state.iteration)

    def validate(self, params, iteration: int) -> dict:
        """The loss on the validation windows, at the step count of ``iteration``'s phase."""
        from graphcast_zero import train_loop
        from graphcast_zero.loader import Batches

        plan, placement = self.inputs.plan, self.placement
        steps = plan.steps_at(iteration - 1)
        windows = self.inputs.data.validation(steps)
        count = len(windows) // plan.batch_size
        if self._evaluate is None:
            constants, step = self.constants, train_loop.make_eval_step(self.predictor)
            self._evaluate = lambda p, b: step(p, constants, placement.batched(b.inputs),
                                               placement.batched(b.targets),
                                               placement.batched(b.forcings))  # fmt: skip
        batches = Batches(
            windows, plan.batch_size, count, seed=None, process_index=self.processes[0],
            process_count=self.processes[1], prefetch=self.cadence.prefetch,
        )  # fmt: skip
        loss = float(np.mean([float(self._evaluate(params, batch)) for batch in batches]))
        score = {"iteration": iteration, "steps": steps, "loss": loss,
                 "windows": count * plan.batch_size}  # fmt: skip
        self.bar.clear()
        self.log(f"validation loss {loss:.4g} at iteration {iteration} ({steps}-step loss, "
                 f"{score['windows']} windows)")  # fmt: skip
        return score

    # ------------------------------------------------------------------------------ saving

    def save(self, params, opt_state, iteration: int) -> None:
        """Writes a checkpoint (process 0 only): weights, moments, histories, data position."""
        import jax

        self.saved_at = iteration
        if self.processes[0] != 0:
            return
        inputs = self.inputs
        snapshot = Snapshot(
            params=jax.tree.map(np.asarray, params),
            opt_state=jax.tree.map(np.asarray, opt_state),
            iterations_done=iteration,
            losses=list(self.losses),
            validation=list(self.scores),
            data_position=self.batches.get_state(),
            data_wait=self.wait,
        )
        record = {
            "plan": inputs.plan.record(),
            "data": inputs.data.record(),
            "stats_dir": str(inputs.stats_dir.absolute()),
            "devices": self.placement.num_devices,
            "processes": self.processes[1],
            "memory": self.memory.as_json(),
        }
        save_training(inputs.target, inputs.start, snapshot, record, inputs.data.name)

    def finish(self, result):
        """Scores the validation set once more if due, saves the final checkpoint, and returns
        the run's :class:`~graphcast_zero.workflow.train.TrainedWeights`."""
        import jax

        from graphcast_zero.workflow.train import TrainedWeights

        if self.validating and not (self.scores and self.scores[-1]["iteration"] == self.reached):
            self.scores.append(self.validate(result.params, self.reached))
        params = jax.tree.map(np.asarray, result.params)  # to the host once, saved and returned
        self.save(params, result.opt_state, self.reached)
        return TrainedWeights(
            params=params,
            opt_state=result.opt_state,
            losses=result.losses,
            iterations_done=self.reached,
            num_devices=self.placement.num_devices,
            batch_size=self.inputs.plan.batch_size,
            validation=self.scores,
            data_wait=self.wait,
        )

    def peer_failure_message(self, error: BaseException) -> str:
        """The one line that ends this process when a peer of the job is gone."""
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        saved = f"iteration {self.saved_at}" if self.saved_at else "none yet"
        log = distributed.native_log()
        return (
            f"training stopped at iteration {self.reached + 1}: process {self.processes[0]} of "
            f"{self.processes[1]} lost another process of the job ({type(error).__name__}: "
            f"{reason}); restart every process with --resume (last checkpoint: {saved})"
            + (f"; JAX's log: {log}" if log else "")
        )

    def close(self) -> None:
        self.bar.close()
