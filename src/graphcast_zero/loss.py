"""The GraphCast training objective and its gradients.

The loss is the official one: on normalised residuals (or normalised values for targets that are
not inputs), squared error × latitude weight × level weight, averaged over everything but the
batch, summed over variables with per-variable weights, averaged over autoregressive steps and
then over the batch. In bfloat16 mode it is computed in bfloat16, as the official demo does.
The optimiser step and the loop around it live in :mod:`graphcast_zero.train_loop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero import trajectory
from graphcast_zero.evaluation import latitude_weights
from graphcast_zero.predictor import Frames, Predictor, shift_in
from graphcast_zero.rollout import split_static, time_major

# Variables absent here weigh 1.0.
VARIABLE_WEIGHTS = {
    "10m_u_component_of_wind": 0.1,
    "10m_v_component_of_wind": 0.1,
    "mean_sea_level_pressure": 0.1,
    "total_precipitation_6hr": 0.1,
}


def check_latitudes(lat_deg: Sequence[float]) -> None:
    """The grids the official loss accepts: equally spaced latitudes that either include both
    poles or stop half a spacing short of them.

    Raises:
      ValueError: for unequal spacing or a grid of neither kind.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    spacing = np.diff(lat)
    if lat.size < 2 or not np.allclose(spacing, spacing[0]):
        raise ValueError(f"latitudes must be equally spaced, got spacings {np.unique(spacing)}")
    delta = abs(spacing[0])
    if np.isclose(np.abs(lat).max(), 90.0):
        if not (np.isclose(lat.max(), 90.0) and np.isclose(lat.min(), -90.0)):
            raise ValueError("a grid with one pole must include the other")
    elif not (np.isclose(lat.max(), 90 - delta / 2) and np.isclose(lat.min(), -90 + delta / 2)):
        raise ValueError("latitudes must include the poles or end half a spacing from them")


def level_weights(levels: Sequence[int]) -> np.ndarray:
    """Weights proportional to pressure, with unit mean."""
    levels = np.asarray(levels, dtype=np.float64)
    return levels / levels.mean()


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights broadcastable against ``[batch, 1, lat, lon, channels]`` frames."""

    latitude: np.ndarray  # [lat, 1, 1] -> broadcast over lon and channels
    level: np.ndarray  # [channels] for multi-level variables


def loss_weights(predictor: Predictor) -> LossWeights:
    """The predictor grid's area weights (``evaluation.latitude_weights``) and level weights."""
    check_latitudes(predictor.lat)
    return LossWeights(
        latitude=latitude_weights(predictor.lat).values[:, None, None],
        level=level_weights(predictor.task_config.pressure_levels),
    )


def per_variable_losses(
    normalized_predictions: Frames, normalized_targets: Frames, weights: LossWeights, dtype
) -> dict[str, jax.Array]:
    """Weighted mean squared error per variable: ``{name: [batch]}`` in ``dtype``."""
    losses = {}
    for name, prediction in normalized_predictions.items():
        error = prediction.astype(dtype) - normalized_targets[name].astype(dtype)
        squared = error * error * weights.latitude.astype(dtype)
        if prediction.shape[-1] > 1:
            squared = squared * weights.level.astype(dtype)
        losses[name] = jnp.mean(squared, axis=tuple(range(1, squared.ndim)))
    return losses


def loss_and_diagnostics(
    predictor: Predictor,
    params,
    constants,
    inputs: Frames,
    targets: Frames,
    forcings: Frames,
    remat: Optional[bool] = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training loss over ``steps`` autoregressive steps.

    Args:
      predictor: the model.
      params: haiku parameters (float32).
      constants: ``predictor.constants()`` (prepared terms are recomputed from ``params``).
      inputs: every input variable, [batch, frames, lat, lon, channels].
      targets: every target variable, [batch, steps, lat, lon, channels].
      forcings: every forcing variable at the target times, [batch, steps, lat, lon, channels].
      remat: for losses over more than one step, keep only each step's network output for
        the backward pass and recompute one step at a time there (``trajectory``): the memory
        of one step plus one output per step, for one more forward pass. None: the
        predictor's ``memory.remat_steps``.

    Returns:
      (loss, per-variable losses): float32 scalars, averaged over steps and batch.
    """
    if remat is None:
        remat = predictor.memory.remat_steps
    weights = loss_weights(predictor)
    dtype = predictor.compute_dtype
    static, dynamic = split_static(predictor, inputs)
    # Always from these parameters (terms prepared earlier would hold the edge encoders still),
    # once per loss where the predictor reuses edge terms, else per step (prepare is then a
    # no-op): either way gradients flow through them to the edge encoders.
    unprepared = {name: value for name, value in constants.items() if name != "static"}
    terms = {key: v for key, v in predictor.prepare(params, unprepared).items() if key == "static"}

    def step(trained, fixed, window, target_and_forcing):
        params, terms = trained
        unprepared, static = fixed
        target, forcing = target_and_forcing
        constants = {**unprepared, **terms}
        frames = {**static, **window}
        update = predictor.network_outputs(params, constants, frames, forcing)
        outputs = predictor.split_outputs(update.astype(jnp.float32))
        normalized_target = predictor.normalize_targets(constants, frames, target)
        per_variable = per_variable_losses(outputs, normalized_target, weights, dtype)
        total = sum(VARIABLE_WEIGHTS.get(n, 1.0) * v for n, v in per_variable.items())
        cast = {n: v.astype(jnp.float32) for n, v in per_variable.items()}
        return (total.astype(jnp.float32), cast), update

    def advance(fixed, window, update, target_and_forcing):
        unprepared, static = fixed
        frames = {**static, **window}
        outputs = predictor.split_outputs(update.astype(jnp.float32))
        predictions = predictor.denormalize(unprepared, frames, outputs)
        return predictor.next_frame(predictions, target_and_forcing[1])

    trained, fixed = (params, terms), (unprepared, static)
    xs = (time_major(targets), time_major(forcings))
    num_steps = next(iter(targets.values())).shape[1]
    if num_steps == 1:
        # No scan: differentiating a scan hoists the work that is the same at every step out
        # of it and keeps its results for the backward pass, which would keep the grid chunks'
        # edge terms for the whole grid. With one step nothing would be freed by remat either.
        out, _ = step(trained, fixed, dynamic, trajectory.at_step(xs, 0))
        losses, diagnostics = jax.tree.map(lambda x: x[None], out)
    elif remat:
        losses, diagnostics = trajectory.checkpointed_scan(
            step, advance, trained, fixed, dynamic, xs
        )
    else:

        def body(window, x):
            out, update = step(trained, fixed, window, x)
            return shift_in(window, advance(fixed, window, update, x)), out

        _, (losses, diagnostics) = jax.lax.scan(body, dynamic, xs)
    # [steps, batch] -> mean over steps, then over the batch.
    return losses.mean(axis=0).mean(), {n: v.mean(axis=0).mean() for n, v in diagnostics.items()}


def loss_and_grads(predictor: Predictor, params, constants, inputs, targets, forcings, remat=None):
    """(loss, diagnostics), gradients with respect to ``params`` (float32)."""

    def objective(p):
        return loss_and_diagnostics(predictor, p, constants, inputs, targets, forcings, remat)

    return jax.value_and_grad(objective, has_aux=True)(params)
