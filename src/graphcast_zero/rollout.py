"""Autoregressive prediction over many steps: one compiled scan, optionally in chunks.

Each step feeds its predictions (and the known forcings) back as the newest input frame. The
steps of a chunk run inside one ``jax.lax.scan``, compiled once; chunks bound device memory for
long rollouts by moving finished predictions to the host. The last chunk is padded so every chunk
has the same shape and nothing recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.predictor import Frames, Predictor, on_cpu


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

    Returns:
      (final inputs, predictions), predictions per target [batch, steps, lat, lon, channels].
    """
    static, dynamic = split_static(predictor, inputs)
    constants = predictor.prepare(params, constants)

    def step(carry, forcing):
        predictions = predictor.one_step(params, constants, {**static, **carry}, forcing)
        carry = split_static(predictor, predictor.next_inputs(carry, predictions, forcing))[1]
        return carry, {n: v[:, 0] for n, v in predictions.items()}

    if remat:
        step = jax.checkpoint(step)
    final, predictions = jax.lax.scan(step, dynamic, time_major(forcings))
    return {**static, **final}, {n: jnp.moveaxis(v, 0, 1) for n, v in predictions.items()}


def chunk_program(predictor: Predictor, backend: Optional[str] = None):
    """``rollout_scan`` jitted as ``predict`` runs each chunk: the input state (argument 2) is
    donated to the next chunk's, except on CPUs, which cannot donate buffers.

    Args:
      predictor: the model.
      backend: the platform compiled for; ``jax.default_backend()`` by default.
    """
    donate = () if on_cpu(backend) else (2,)
    return jax.jit(functools.partial(rollout_scan, predictor), donate_argnums=donate)


@dataclasses.dataclass(frozen=True, eq=False)
class RolloutProgram:
    """The jitted functions a forecast runs: kept and reused, they trace and compile once.

    Each ``predict`` call otherwise wraps new functions, which JAX traces again; a caller that
    forecasts many times with one predictor (a hindcast worker) builds this once.

    Attributes:
      run: :func:`chunk_program` of the predictor.
      prepare: ``predictor.prepare`` jitted (the step-independent edge terms).
    """

    run: Callable
    prepare: Callable


def rollout_program(predictor: Predictor) -> RolloutProgram:
    """The jitted chunk program and ``prepare`` of ``predictor``, to pass to :func:`predict`."""
    return RolloutProgram(run=chunk_program(predictor), prepare=jax.jit(predictor.prepare))


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
    on_chunk: Optional[Callable[[int, int], None]] = None,
    program: Optional[RolloutProgram] = None,
) -> dict[str, np.ndarray]:
    """Runs a rollout over every forcing step and returns host arrays.

    Args:
      predictor: the model.
      params: haiku parameters.
      inputs: every input variable, [batch, frames, lat, lon, channels].
      forcings: every forcing variable at the target times, [batch, steps, lat, lon, channels].
      chunk_steps: steps per compiled chunk (default: all steps in one chunk).
      on_chunk: called as ``on_chunk(steps_done, steps_total)`` after each chunk, for progress.
      program: :func:`rollout_program` of ``predictor``, to reuse across forecasts (default:
        built for this call).

    Returns:
      Per target variable, [batch, steps, lat, lon, channels] float32 numpy arrays.
    """
    total = next(iter(forcings.values())).shape[1]
    chunk = min(chunk_steps or total, total)
    program = program or rollout_program(predictor)
    # Computed once for every chunk: the encoded edges depend only on parameters and graph.
    constants = program.prepare(params, predictor.constants())
    state = {n: jnp.asarray(v) for n, v in inputs.items()}
    pieces: list[dict[str, np.ndarray]] = []
    for start in range(0, total, chunk):
        piece = {n: v[:, start : start + chunk] for n, v in forcings.items()}
        done = next(iter(piece.values())).shape[1]
        state, predictions = program.run(params, constants, state, _pad_steps(piece, chunk))
        pieces.append({n: np.asarray(v[:, :done]) for n, v in predictions.items()})
        if on_chunk is not None:
            on_chunk(start + done, total)
    return {n: np.concatenate([p[n] for p in pieces], axis=1) for n in pieces[0]}
