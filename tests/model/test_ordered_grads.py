"""The tie that makes rematerialised message steps finish their parameter gradients in place."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.model.ordered_grads import tie


def _loss(x, y):
    a, b = tie(x, y)
    return jnp.sum(3 * a) + jnp.sum(b**2)


def test_tie_is_the_identity_for_values_and_gradients():
    x, y = jnp.arange(3.0), jnp.asarray([1.0, -2.0])
    assert [np.asarray(v).tolist() for v in tie(x, y)] == [[0.0, 1.0, 2.0], [1.0, -2.0]]
    dx, dy = jax.grad(_loss, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(dx, [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(dy, [2.0, -4.0])  # d(b²)/db = 2b


def test_tied_cotangents_leave_through_one_barrier():
    jaxpr = jax.make_jaxpr(jax.grad(_loss, argnums=(0, 1)))(jnp.zeros(3), jnp.zeros(2))
    barriers = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "optimization_barrier"]
    # Both cotangents come out of the same barrier: neither is usable before the other exists.
    assert len(barriers) == 1 and len(barriers[0].outvars) == 2
