"""Autoregressive prediction over many steps: one compiled scan, predictions streamed out.

Each step feeds its predictions (and the known forcings) back as the newest input frame. The
steps of a chunk run inside one ``jax.lax.scan``, compiled once. ``predict`` hands each step's
predictions to the host from inside the scan (``io_callback``), so the device holds one step's
predictions whatever the forecast's length: a 40-step 0.25° forecast would otherwise keep 35 GiB
of float32 predictions on the device. Chunks only bound the length of one compiled call (the last
chunk is padded so every chunk has the same shape and nothing recompiles).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from graphcast_zero import memory
from graphcast_zero.predictor import Frames, Predictor, on_cpu, shift_in

# sink(step_index, predictions): called inside the scan with each step's predictions (per target,
# [batch, lat, lon, channels]) instead of stacking them as the scan's output.
Sink = Callable[[jax.Array, Frames], None]


def split_static(predictor: Predictor, inputs: Frames) -> tuple[Frames, Frames]:
    """(static, dynamic) inputs: the loop carries only the frames that change from step to step."""
    dynamic = {n: inputs[n] for n in predictor.dynamic_inputs}
    static = {n: v for n, v in inputs.items() if n not in dynamic}
    return static, dynamic


def time_major(frames: Frames) -> Frames:
    """[batch, steps, ...] -> [steps, batch, 1, ...]: one scan slice per step, time axis kept."""
    return {n: jnp.moveaxis(v, 1, 0)[:, :, None] for n, v in frames.items()}


def rollout_scan(
    predictor: Predictor,
    params,
    constants,
    inputs: Frames,
    forcings: Frames,
    remat: bool = False,
    sink: Optional[Sink] = None,
    first_step: jax.Array | int = 0,
) -> tuple[Frames, Frames]:
    """Predicts ``steps`` frames in one scan.

    Args:
      predictor: the model.
      params: haiku parameters.
      constants: ``predictor.constants()`` or ``predictor.prepare(params, ...)`` of it; the
        step-independent terms are computed once, before the scan, when not already there.
      inputs: every input variable, [batch, frames, lat, lon, channels].
      forcings: every forcing variable at the target times, [batch, steps, lat, lon, channels].
      remat: recompute each step's activations in the backward pass (saves memory).
      sink: receives each step's predictions as ``sink(first_step + i, predictions)`` inside
        the scan; they are then not returned.
      first_step: the index of this call's first step, passed on to ``sink``.

    Returns:
      (final inputs, predictions), predictions per target [batch, steps, lat, lon, channels]
      (empty with a ``sink``).
    """
    static, dynamic = split_static(predictor, inputs)
    constants = predictor.prepare(params, constants)

    def step(carry, indexed_forcing):
        index, forcing = indexed_forcing
        predictions = predictor.one_step(params, constants, {**static, **carry}, forcing)
        carry = shift_in(carry, predictor.next_frame(predictions, forcing))
        frames = {n: v[:, 0] for n, v in predictions.items()}
        if sink is None:
            return carry, frames
        sink(index, frames)
        return carry, {}

    if remat:
        step = jax.checkpoint(step)
    steps = next(iter(forcings.values())).shape[1]
    indices = first_step + jnp.arange(steps)
    final, predictions = jax.lax.scan(step, dynamic, (indices, time_major(forcings)))
    return {**static, **final}, {n: jnp.moveaxis(v, 0, 1) for n, v in predictions.items()}


def chunk_program(predictor: Predictor, backend: Optional[str] = None, sink: Optional[Sink] = None):
    """``rollout_scan`` jitted as ``predict`` runs each chunk: the input state (argument 2) is
    donated to the next chunk's, except on CPUs, which cannot donate buffers.

    Args:
      predictor: the model.
      backend: the platform compiled for; ``jax.default_backend()`` by default.
      sink: see ``rollout_scan``; the program then takes the chunk's first step index as a
        fifth argument.
    """
    donate = () if on_cpu(backend) else (2,)

    def run(params, constants, inputs, forcings, first_step=0):
        return rollout_scan(
            predictor, params, constants, inputs, forcings, sink=sink, first_step=first_step
        )

    return jax.jit(run, donate_argnums=donate)


class _HostPredictions:
    """Collects one forecast's streamed predictions into host arrays
    [batch, total, lat, lon, channels]."""

    def __init__(self, total: int, on_step: Optional[Callable[[int, int], None]]):
        self.total = total
        self.on_step = on_step
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, index: int, frames: dict[str, np.ndarray]) -> None:
        if index >= self.total:  # the padded tail of the last chunk
            return
        for name, value in frames.items():
            if name not in self.arrays:
                shape = (value.shape[0], self.total) + value.shape[1:]
                self.arrays[name] = np.empty(shape, np.float32)
            self.arrays[name][:, index] = value
        if self.on_step is not None:
            self.on_step(index + 1, self.total)


class StepStream:
    """The host end of a compiled program's predictions: hands each step's to the forecast
    collecting now.

    The callback is compiled into the program once; the collector changes per forecast, so a
    kept program serves many forecasts (one at a time: ``collecting`` holds a lock).
    """

    def __init__(self):
        self._collector: Optional[_HostPredictions] = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def collecting(self, collector: _HostPredictions):
        """Routes the steps to ``collector`` until every callback of the block has run."""
        with self._lock:
            self._collector = collector
            try:
                yield
                jax.effects_barrier()
            finally:
                self._collector = None

    def _receive(self, index, frames) -> None:
        if self._collector is None:
            raise RuntimeError("a forecast step arrived outside StepStream.collecting")
        self._collector(int(index), {n: np.asarray(v) for n, v in frames.items()})

    def sink(self, index: jax.Array, frames: Frames) -> None:
        """``rollout_scan``'s sink. Ordered: steps reach the host (and the progress bar) in
        order."""
        io_callback(self._receive, None, index, frames, ordered=True)


def drop_predictions(index, predictions) -> None:
    """A sink that drops what it is given: ``predict``'s program without its host callback,
    whose memory is the same (the predictions are computed and held all the same); for
    counting memory where the callback cannot be compiled or is not wanted."""


def choose_memory_plan(
    predictor: Predictor,
    params,
    inputs: dict[str, np.ndarray],
    forcings: dict[str, np.ndarray],
    chunk_steps: Optional[int] = None,
    grid_chunks: Optional[int] = None,
    budget: Optional[float] = None,
) -> tuple[memory.Choice, Optional[RolloutProgram]]:
    """The cheapest memory plan whose forecast program fits the device (``memory.choose``).

    Each candidate's chunk program is compiled (not run) as ``predict`` runs it, host callback
    included, and XLA's buffer assignment is compared with the device's memory; the chosen
    one is then run as compiled, not compiled again.

    Args:
      predictor: the model (its own plan is ignored).
      params, inputs, forcings: as for ``predict``.
      chunk_steps: as for ``predict``.
      grid_chunks: a fixed chunk count, or None to choose.
      budget: usable device bytes (default: ``memory.device_budget()``).

    Returns:
      (the choice, the chosen plan's :class:`RolloutProgram` with its chunk program compiled
      for these shapes, to pass to ``predict`` with the same ``chunk_steps``; None when nothing
      was compiled).
    """
    total = next(iter(forcings.values())).shape[1]
    chunk = min(chunk_steps or total, total)
    plans = memory.restrict(
        memory.ladder(predictor.graphs.num_grid_nodes, training=False), grid_chunks
    )
    programs = {}

    def measure(plan: memory.MemoryPlan) -> int:
        planned = dataclasses.replace(predictor, memory=plan)
        constants = jax.eval_shape(planned.prepare, params, planned.constants())
        piece = {n: jax.ShapeDtypeStruct((v.shape[0], chunk) + v.shape[2:], v.dtype)
                 for n, v in forcings.items()}  # fmt: skip
        program = rollout_program(planned)
        # first_step passed as predict passes it: a Python int, traced.
        compiled = program.run.lower(params, constants, inputs, piece, 0).compile()
        programs[plan] = dataclasses.replace(program, run=compiled)
        return memory.compiled_bytes(compiled)

    choice = memory.choose(plans, measure, memory.device_budget() if budget is None else budget)
    return choice, programs.get(choice.plan)


@dataclasses.dataclass(frozen=True, eq=False)
class RolloutProgram:
    """The jitted functions a forecast runs: kept and reused, they trace and compile once.

    Each ``predict`` call otherwise wraps new functions, which JAX traces again; a caller that
    forecasts many times with one predictor (a hindcast worker) builds this once.

    Attributes:
      run: :func:`chunk_program` of the predictor, streaming to ``stream``.
      prepare: ``predictor.prepare`` jitted (the step-independent edge terms).
    """

    run: Callable
    prepare: Callable
    stream: StepStream


def rollout_program(predictor: Predictor) -> RolloutProgram:
    """The jitted chunk program and ``prepare`` of ``predictor``, to pass to :func:`predict`."""
    stream = StepStream()
    return RolloutProgram(
        run=chunk_program(predictor, sink=stream.sink),
        prepare=jax.jit(predictor.prepare),
        stream=stream,
    )


def _pad_steps(forcings: dict[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """Repeats the last forcing frame so a short final chunk has the full chunk length."""
    have = next(iter(forcings.values())).shape[1]
    if have == steps:
        return forcings
    return {
        n: np.concatenate([v] + [v[:, -1:]] * (steps - have), axis=1) for n, v in forcings.items()
    }


def predict(
    predictor: Predictor,
    params,
    inputs: dict[str, np.ndarray],
    forcings: dict[str, np.ndarray],
    chunk_steps: Optional[int] = None,
    on_step: Optional[Callable[[int, int], None]] = None,
    program: Optional[RolloutProgram] = None,
) -> dict[str, np.ndarray]:
    """Runs a rollout over every forcing step and returns host arrays.

    Args:
      predictor: the model.
      params: haiku parameters.
      inputs: every input variable, [batch, frames, lat, lon, channels].
      forcings: every forcing variable at the target times, [batch, steps, lat, lon, channels].
      chunk_steps: steps per compiled call (default: all steps in one call). Device memory does
        not depend on it: predictions leave the device step by step.
      on_step: called as ``on_step(steps_done, steps_total)`` as each step's predictions reach
        the host, for progress.
      program: :func:`rollout_program` of ``predictor``, to reuse across forecasts (default:
        built for this call).

    Returns:
      Per target variable, [batch, steps, lat, lon, channels] float32 numpy arrays.
    """
    total = next(iter(forcings.values())).shape[1]
    chunk = min(chunk_steps or total, total)
    program = program or rollout_program(predictor)
    host = _HostPredictions(total, on_step)
    # Computed once for every chunk: the encoded edges depend only on parameters and graph.
    constants = program.prepare(params, predictor.constants())
    state = {n: jnp.asarray(v) for n, v in inputs.items()}
    with program.stream.collecting(host):
        for start in range(0, total, chunk):
            piece = {n: v[:, start : start + chunk] for n, v in forcings.items()}
            state, _ = program.run(params, constants, state, _pad_steps(piece, chunk), start)
    return host.arrays
