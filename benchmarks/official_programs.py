"""DeepMind's GraphCast programs, built for compiling only (memory_fit's side-by-side figures).

The official code takes xarray Datasets. To compile it for a device without data (abstract
shapes on a compile-only target), each program here takes plain arrays per variable and
rebuilds the Datasets inside, from templates that carry the dimensions and coordinates. The
predictor is assembled as the official demo assembles it (``benchmark._official_model``):
``GraphCast`` → ``Bfloat16Cast`` → ``InputsAndResiduals`` → ``autoregressive.Predictor`` with
gradient checkpointing. Needs DeepMind's ``graphcast`` package importable; never a dependency.
"""

from __future__ import annotations

import benchmark
import numpy as np


def _template(dataset, steps: int | None = None):
    """``dataset``'s structure with ``steps`` times (6 h apart) and no data (zero-stride views)."""
    import xarray as xr

    coords = {name: coord for name, coord in dataset.coords.items() if "time" not in coord.dims}
    if steps is not None:
        coords["time"] = np.arange(1, steps + 1) * np.timedelta64(6, "h")
        if "datetime" in dataset.coords:
            start = dataset["datetime"].values[:, :1]
            coords["datetime"] = (("batch", "time"), start + coords["time"][None])
    else:
        coords.update({n: c for n, c in dataset.coords.items() if "time" in c.dims})
    variables = {}
    for name, variable in dataset.data_vars.items():
        shape = [
            steps if dim == "time" and steps is not None else dataset.sizes[dim]
            for dim in variable.dims
        ]
        variables[name] = (variable.dims, np.broadcast_to(np.zeros((), variable.dtype), shape))
    return xr.Dataset(variables, coords=coords)


def _rebuild(template, arrays):
    from graphcast import xarray_jax

    data = {name: (template[name].dims, arrays[name]) for name in template.data_vars}
    return xarray_jax.Dataset(data, coords=template.coords)


def _arrays(template, batch: int) -> dict:
    """Abstract arrays of a template with a new batch size."""
    import jax

    shapes = {}
    for name, variable in template.data_vars.items():
        shape = [
            batch if dim == "batch" else size
            for dim, size in zip(variable.dims, variable.shape, strict=True)
        ]
        shapes[name] = jax.ShapeDtypeStruct(tuple(shape), variable.dtype)
    return shapes


class OfficialCandidates:
    """The official inference rollout and training loss of one configuration, per shape."""

    def __init__(self, config: str, precision: str):
        import dataclasses

        import jax
        import jax.numpy as jnp
        from graphcast import data_utils

        model, task, dataset, stats, params = benchmark.example(config, 1)
        inputs, targets, forcings = data_utils.extract_inputs_targets_forcings(
            dataset, target_lead_times=slice("6h", "6h"), **dataclasses.asdict(task)
        )
        self.construct, _ = benchmark._official_model(model, task, stats, precision)
        self.params = jax.tree.map(jnp.asarray, params)
        self.inputs, self.targets, self.forcings = inputs, targets, forcings

    def program(self, phase: str, batch: int, steps: int):
        """(jitted program, its operands as abstract shapes)."""
        import haiku as hk
        import jax
        from graphcast import xarray_jax

        templates = (
            _template(self.inputs),
            _template(self.targets, steps),
            _template(self.forcings, steps),
        )
        rng = jax.random.PRNGKey(0)
        construct = self.construct

        if phase == "inference":
            forward = hk.transform_with_state(
                lambda i, t, f: construct()(i, targets_template=t, forcings=f)
            )

            def run(params, inputs, template, forcings):
                datasets = [
                    _rebuild(*pair)
                    for pair in zip(templates, (inputs, template, forcings), strict=True)
                ]
                predictions, _ = forward.apply(params, {}, rng, *datasets)
                return xarray_jax.unwrap_vars(predictions)

        else:
            loss_fn = hk.transform_with_state(lambda i, t, f: construct().loss(i, t, f))

            def run(params, inputs, targets, forcings):
                datasets = [
                    _rebuild(*pair)
                    for pair in zip(templates, (inputs, targets, forcings), strict=True)
                ]

                def objective(p):
                    (loss, _), _ = loss_fn.apply(p, {}, rng, *datasets)
                    return xarray_jax.unwrap_data(loss.mean(), require_jax=True)

                return jax.value_and_grad(objective)(params)

        operands = (self.params, *(_arrays(t, batch) for t in templates))
        return jax.jit(run), operands
