"""Make a rematerialised piece of a haiku network finish its parameter gradients in place.

In the backward pass XLA may postpone every weight-gradient product until the end of the
program, as nothing reads them before. For rematerialised message steps that keeps each step's
recomputed latents alive until then, undoing the remat (10 GiB at 0.25°). ``run_ordered`` passes a
piece's inputs and its own parameters through ``tie``, an identity whose backward pass releases
all their cotangents together through an optimisation barrier: the inputs' gradients, which the
previous piece's backward pass needs, then wait for the parameters' gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import haiku as hk
import jax


@jax.custom_vjp
def tie(*values):
    """Identity; in the backward pass all cotangents leave together, once all are computed."""
    return values


def _tie_fwd(*values):
    return values, None


def _tie_bwd(_, cotangents):
    return jax.lax.optimization_barrier(cotangents)


tie.defvjp(_tie_fwd, _tie_bwd)


def run_ordered(run: Callable, module_prefixes: Sequence[str], *inputs):
    """``run(*inputs)`` (inside ``hk.transform``) with the gradients of the parameters of the
    modules whose paths start with ``module_prefixes`` finished before those of ``inputs``.

    The parameters are read once (``hk.get_params``), tied to the inputs, and handed to the
    modules by a custom getter, so that they are the only copies ``run`` uses.
    """
    prefixes = tuple(module_prefixes)
    own = {k: v for k, v in hk.get_params().items() if k.startswith(prefixes)}
    *inputs, own = tie(*inputs, own)

    def from_own(next_getter, value, context):
        if context.module_name in own:
            return own[context.module_name][context.name]
        return next_getter(value)

    with hk.custom_getter(from_own):
        return run(*inputs)
