"""An autoregressive scan whose backward pass keeps each step's network output, not its state.

A GraphCast step reads a window of the last ``T`` frames (2 for the published 12 h input) and
writes the next frame. Rematerialising each step of a ``lax.scan`` keeps the scan's carry for
every step: the whole window, float32, so every frame ``T`` times. Here the forward pass keeps
only what each step's network produced (its normalised outputs, bfloat16 when the network runs
in bfloat16), from which the next frame follows by cheap elementwise arithmetic. The backward
pass walks the steps in reverse: it replays that arithmetic from the first window to rebuild
step ``k``'s window, recomputes step ``k`` and pulls the cotangents through it. The gradients are
the scan's own; only what is kept differs.

At 0.25° with 37 levels a 12-step loss then keeps 12 × 0.44 GiB of bfloat16 outputs instead of
12 two-frame float32 windows (21 GiB). Replaying costs ``k`` elementwise frame updates before
step ``k``'s recomputation: about 70 such updates for 12 steps, next to 12 network steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from graphcast_zero.predictor import Frames, shift_in

# step(params, extra, window, x) -> (out, update): everything that depends on the parameters.
Step = Callable[[Any, Any, Frames, Any], tuple[Any, Any]]
# advance(extra, window, update, x) -> frame: the next frame, [batch, 1, ...] per variable.
Advance = Callable[[Any, Frames, Any, Any], Frames]


def at_step(tree, index):
    """Every leaf's ``index``-th entry along its leading (step) axis."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def _forward(step, advance, params, extra, first, xs):
    def body(window, x):
        out, update = step(params, extra, window, x)
        return shift_in(window, advance(extra, window, update, x)), (out, update)

    _, (outs, updates) = jax.lax.scan(body, first, xs)
    return outs, updates


def _window_at(advance, extra, first, updates, xs, k) -> Frames:
    """Step ``k``'s window, replayed from the first one and the kept updates."""

    def replay(j, window):
        return shift_in(window, advance(extra, window, at_step(updates, j), at_step(xs, j)))

    return jax.lax.fori_loop(0, k, replay, first)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _checkpointed(step, advance, params, extra, first, xs):
    return _forward(step, advance, params, extra, first, xs)[0]


def _checkpointed_fwd(step, advance, params, extra, first, xs):
    outs, updates = _forward(step, advance, params, extra, first, xs)
    return outs, (params, extra, first, xs, updates)


def _checkpointed_bwd(step, advance, residuals, out_cotangents):
    params, extra, first, xs, updates = residuals
    num_steps = jax.tree.leaves(out_cotangents)[0].shape[0]

    def body(carry, k):
        # window_cotangent: the cotangent of step k + 1's window, from the steps after k.
        param_cotangent, window_cotangent = carry
        x = at_step(xs, k)
        window = _window_at(advance, extra, first, updates, xs, k)

        def whole_step(p, w):
            out, update = step(p, extra, w, x)
            return out, advance(extra, w, update, x)

        _, pull_back = jax.vjp(whole_step, params, window)
        # Step k's frame is the last of step k + 1's window; every later reader is done.
        frame_cotangent = {n: c[:, -1:] for n, c in window_cotangent.items()}
        d_params, d_window = pull_back((at_step(out_cotangents, k), frame_cotangent))
        # Step k's window is step k + 1's shifted back by one frame.
        earlier = {
            n: jnp.concatenate([jnp.zeros_like(c[:, :1]), c[:, :-1]], axis=1)
            for n, c in window_cotangent.items()
        }
        window_cotangent = {n: d_window[n] + earlier[n] for n in d_window}
        param_cotangent = jax.tree.map(jnp.add, param_cotangent, d_params)
        return (param_cotangent, window_cotangent), None

    start = (jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, first))
    (param_cotangent, _), _ = jax.lax.scan(body, start, jnp.arange(num_steps), reverse=True)
    return param_cotangent, None, None, None


_checkpointed.defvjp(_checkpointed_fwd, _checkpointed_bwd)


def checkpointed_scan(step: Step, advance: Advance, params, extra, first: Frames, xs):
    """``step`` over the leading axis of ``xs``, each new frame feeding the next window.

    Differentiable with respect to ``params`` only (``extra``, ``first`` and ``xs`` get no
    gradient). The backward pass keeps ``first`` and each step's ``update``, and recomputes one
    step at a time.

    Args:
      step: ``step(params, extra, window, x) -> (out, update)``; ``window`` is like ``first``.
      advance: ``advance(extra, window, update, x) -> frame``, the next frame per variable of
        ``first`` ([batch, 1, ...]); elementwise work without parameters, run once more per
        earlier step when a window is rebuilt.
      params: what gradients are taken for.
      extra: other arrays both read (constants, static inputs).
      first: the first window, per variable ``[batch, T, ...]``.
      xs: per-step inputs with a leading steps axis.

    Both must be pure functions of their arguments (no closed-over arrays: pass them in
    ``extra``).

    Returns:
      The stacked ``out`` of every step, leading axis steps.
    """
    return _checkpointed(step, advance, params, extra, first, xs)
