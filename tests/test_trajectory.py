"""The checkpointed autoregressive scan: a scan's own values and gradients, less kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.predictor import shift_in
from graphcast_zero.trajectory import checkpointed_scan


def step(params, extra, window, x):
    """A two-frame toy model: the update is a nonlinear function of both frames."""
    older, newer = window["a"][:, :1], window["a"][:, 1:]
    update = jnp.tanh(params["w"] * newer + params["v"] * older + extra) * x  # [batch, 1, 3]
    loss = jnp.sum((newer + update - 1.0) ** 2)
    return loss, update


def advance(extra, window, update, x):
    return {"a": window["a"][:, 1:] + update}


def plain(params, extra, first, xs):
    def body(window, x):
        out, update = step(params, extra, window, x)
        return shift_in(window, advance(extra, window, update, x)), out

    return jax.lax.scan(body, first, xs)[1]


PARAMS = {"w": jnp.float32(0.7), "v": jnp.float32(-0.3)}
FIRST = {"a": jnp.asarray(np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 2, 3))}
XS = jnp.asarray(np.linspace(0.5, 1.5, 5, dtype=np.float32))  # 5 steps


def test_values_are_the_scans():
    np.testing.assert_array_equal(
        checkpointed_scan(step, advance, PARAMS, 0.1, FIRST, XS), plain(PARAMS, 0.1, FIRST, XS)
    )


def test_gradients_are_the_scans():
    def total(run):
        return jax.grad(lambda p: run(p, 0.1, FIRST, XS).sum())(PARAMS)

    ours = total(lambda *a: checkpointed_scan(step, advance, *a))
    reference = total(plain)
    for name in PARAMS:
        # The same operations per step; the parameter cotangents are summed over the steps in
        # another order than the scan's transpose sums them: float32 rounding.
        np.testing.assert_allclose(ours[name], reference[name], rtol=1e-6)
    assert abs(float(reference["v"])) > 0  # the older frame matters: windows are rebuilt right


def test_backward_pass_keeps_updates_not_windows():
    # The forward scan's only stacked outputs are the per-step losses and updates
    # ([steps, batch, 1, 3]); the plain scan under remat would keep two-frame windows.
    jaxpr = jax.make_jaxpr(
        jax.grad(lambda p: checkpointed_scan(step, advance, p, 0.1, FIRST, XS).sum())
    )(PARAMS)
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    forward = scans[0]
    stacked = [v.aval.shape for v in forward.outvars[forward.params["num_carry"] :]]
    assert sorted(stacked) == [(5,), (5, 2, 1, 3)]
