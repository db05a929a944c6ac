"""XLA's FLOP count of a program, with every loop counted as many times as it runs.

XLA's cost analysis counts the body of a ``while`` loop once, whatever its trip count; a
``lax.scan`` over 40 forecast steps, 16 grid chunks or the steps of a backward pass would be
undercounted that many times. So the program's jaxpr is re-traced with every scan unrolled into
straight-line code (same operations, same shapes), and XLA's cost analysis of that unoptimised
program (``Lowered.cost_analysis()`` on the default backend, no compilation) is the count.
Rematerialised parts appear twice in it, as they run twice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend import core
from jax.extend.core import primitives


def _sub_jaxpr(params: dict):
    """The (jaxpr, consts) a call-like primitive runs, or None."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = params.get(key)
        if isinstance(sub, core.ClosedJaxpr):
            return sub.jaxpr, sub.consts
        if isinstance(sub, core.Jaxpr):
            return sub, ()
    return None


def _unrolled_scan(params: dict, values: list) -> list:
    body = params["jaxpr"]
    consts = values[: params["num_consts"]]
    carry = values[params["num_consts"] : params["num_consts"] + params["num_carry"]]
    xs = values[params["num_consts"] + params["num_carry"] :]
    order = range(params["length"])
    ys: list = [None] * params["length"]
    for i in reversed(order) if params["reverse"] else order:
        outs = evaluate(body.jaxpr, body.consts, [*consts, *carry, *(x[i] for x in xs)])
        carry, ys[i] = outs[: params["num_carry"]], outs[params["num_carry"] :]
    stacked = [jnp.stack([y[j] for y in ys]) for j in range(len(ys[0]))] if ys and ys[0] else []
    return [*carry, *stacked]


def evaluate(jaxpr, consts, args) -> list:
    """Runs ``jaxpr`` on ``args`` (tracers), unrolling every scan, inner ones included."""
    env = {}

    def read(var):
        return var.val if isinstance(var, core.Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts, strict=True):
        env[var] = value
    for var, value in zip(jaxpr.invars, args, strict=True):
        env[var] = value
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn.params)
        if eqn.primitive is primitives.scan_p:
            outs = _unrolled_scan(eqn.params, values)
        elif sub is not None and eqn.primitive is not primitives.cond_p:
            outs = evaluate(sub[0], sub[1], values[len(values) - len(sub[0].invars) :])
        else:
            outs = eqn.primitive.bind(*values, **eqn.params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        for var, value in zip(eqn.outvars, outs, strict=True):
            if not isinstance(var, core.DropVar):
                env[var] = value
    return [read(v) for v in jaxpr.outvars]


def count_flops(function, *args) -> float:
    """XLA's FLOP count of ``function(*args)`` with its loops unrolled.

    Args:
      function: a jittable function.
      args: its arguments, arrays or ``jax.ShapeDtypeStruct`` (no device placement needed).
    """
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
    closed = jax.make_jaxpr(function)(*abstract)
    flat = jax.tree.leaves(abstract)

    def straight_line(*leaves):
        return evaluate(closed.jaxpr, closed.consts, list(leaves))

    costs = jax.jit(straight_line).lower(*flat).cost_analysis()
    if isinstance(costs, list):  # older jax: one dict per device
        costs = costs[0]
    return float(costs["flops"])
