"""Runs DeepMind's graphcast package the way its demo notebook does (the only module importing it).

The predictor is the demo's stack: ``GraphCast`` → ``casting.Bfloat16Cast`` (disabled for the
float32 variants) → ``normalization.InputsAndResiduals`` → ``autoregressive.Predictor`` with
gradient checkpointing, as haiku ``transform_with_state`` functions, jitted. Rollouts go through
``rollout.chunked_prediction`` (one step per chunk), losses and gradients through the demo's
``loss_fn``/``grads_fn`` pattern with ``PRNGKey(0)``.
"""

from __future__ import annotations

import dataclasses
import warnings

import haiku as hk
import jax
import numpy as np
import xarray as xr
from configurations import OFFICIAL_COMMIT, Configuration
from graphcast import (
    autoregressive,
    casting,
    checkpoint,
    data_utils,
    graphcast,
    normalization,
    rollout,
    xarray_jax,
    xarray_tree,
)

LICENSE = "Random weights; for testing only. Code: Apache 2.0."
# DeepMind's code at 08cf736 predates xarray's Dataset.dims and concat deprecations: mute them.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"graphcast\.")
GRAPHS = ("grid2mesh", "mesh", "mesh2grid")


def official_configs(configuration: Configuration):
    """DeepMind's ``(ModelConfig, TaskConfig)`` for a configuration.

    The demo notebook's "Random" model (``task_name`` None) is built as the notebook builds it: an
    integer resolution 0 and ``TASK``'s variables on 13 levels; the presets use a float 0.0 like the
    published checkpoints.
    """
    if configuration.task_name is None:
        model = graphcast.ModelConfig(resolution=0, **configuration.model)
        task = dataclasses.replace(graphcast.TASK, pressure_levels=graphcast.PRESSURE_LEVELS[13])
        return model, task
    model = graphcast.ModelConfig(resolution=0.0, **configuration.model)
    return model, getattr(graphcast, configuration.task_name)


def describe(configuration: Configuration, model) -> str:
    """The checkpoint's description: seed, origin and the settings that were chosen."""
    if configuration.task_name is None:  # the notebook's "Random" widgets
        chosen = ("mesh_size", "latent_size", "gnn_msg_steps", "hidden_layers")
        settings = [f"{name}={getattr(model, name)}" for name in chosen]
        settings.append(f"{configuration.levels} pressure levels")
    else:
        settings = [
            f"{field.name}={getattr(model, field.name)}"
            for field in dataclasses.fields(model)
            if field.name != "resolution" and getattr(model, field.name) is not None
        ]
        settings.append(f"task {configuration.task_name} ({configuration.levels} pressure levels)")
    return (
        f"Random, untrained GraphCast parameters: PRNGKey({configuration.seed}) initialisation by "
        f"DeepMind's graphcast package (commit {OFFICIAL_COMMIT}) with {', '.join(settings)}."
    )


def extract(dataset: xr.Dataset, task, steps: int):
    """``(inputs, targets, forcings)`` for ``steps`` 6-hour targets, as the demo extracts them."""
    return data_utils.extract_inputs_targets_forcings(
        dataset, target_lead_times=slice("6h", f"{6 * steps}h"), **dataclasses.asdict(task)
    )


class OfficialPredictor:
    """The demo's predictor stack for one precision, with its jitted haiku functions.

    Args:
      model, task: DeepMind's configs.
      stats: ``{"diffs_stddev_by_level", "mean_by_level", "stddev_by_level"}`` datasets.
      bfloat16: the demo's bfloat16 cast; False gives the float32 variant.
    """

    def __init__(self, model, task, stats: dict[str, xr.Dataset], bfloat16: bool):
        def construct():
            predictor = graphcast.GraphCast(model, task)
            predictor = casting.Bfloat16Cast(predictor, enabled=bfloat16)
            predictor = normalization.InputsAndResiduals(predictor, **stats)
            return autoregressive.Predictor(predictor, gradient_checkpointing=True)

        @hk.transform_with_state
        def forward(inputs, targets_template, forcings):
            return construct()(inputs, targets_template=targets_template, forcings=forcings)

        @hk.transform_with_state
        def loss(inputs, targets, forcings):
            value, diagnostics = construct().loss(inputs, targets, forcings)
            return xarray_tree.map_structure(
                lambda x: xarray_jax.unwrap_data(x.mean(), require_jax=True), (value, diagnostics)
            )

        def loss_and_grads(params, state, inputs, targets, forcings):
            def objective(params):
                (value, diagnostics), _ = loss.apply(
                    params, state, jax.random.PRNGKey(0), inputs, targets, forcings
                )
                return value, diagnostics

            (value, diagnostics), grads = jax.value_and_grad(objective, has_aux=True)(params)
            return value, diagnostics, grads

        self.init = jax.jit(forward.init)
        self._forward = {True: jax.jit(forward.apply), False: forward.apply}
        self._loss = jax.jit(loss.apply)
        self._loss_and_grads = jax.jit(loss_and_grads)

    def predict(self, params, inputs, targets, forcings, jit: bool = True) -> xr.Dataset:
        """The rollout over ``targets``' lead times, one jitted step per chunk (as the demo)."""
        apply = self._forward[jit]
        return rollout.chunked_prediction(
            lambda **kwargs: apply(params, {}, **kwargs)[0],
            rng=jax.random.PRNGKey(0),
            inputs=inputs,
            targets_template=targets * np.nan,
            forcings=forcings,
        )

    def loss_record(self, params, inputs, targets, forcings) -> tuple[dict, dict]:
        """The loss record of loss.json and the gradient tree, for the targets given."""
        (value, diagnostics), _ = self._loss(
            params, {}, jax.random.PRNGKey(0), inputs, targets, forcings
        )
        value_from_grads, _, grads = self._loss_and_grads(params, {}, inputs, targets, forcings)
        grads = jax.device_get(grads)
        # The demo's "mean |grad|": each parameter array's mean |g|, averaged over the arrays.
        mean_abs_grad = np.mean(jax.tree.leaves(jax.tree.map(lambda g: np.abs(g).mean(), grads)))
        record = {
            "num_target_steps": targets.sizes["time"],
            "loss": float(value),
            "loss_from_grads_fn": float(value_from_grads),
            "mean_abs_grad": float(mean_abs_grad),
            "diagnostics": {name: float(v) for name, v in sorted(diagnostics.items())},
        }
        return record, grads


def flatten_params(tree: dict) -> dict[str, np.ndarray]:
    """``{"params:<module path>:<name>": array}``, the checkpoint's key layout."""
    return {
        f"params:{module}:{name}": np.asarray(value)
        for module, leaves in tree.items()
        for name, value in leaves.items()
    }


def graph_arrays(model, task, inputs: xr.Dataset) -> dict[str, np.ndarray]:
    """The official mesh and the three graphs' structural arrays for the grid of ``inputs``."""
    built = []

    def build(sample):
        core = graphcast.GraphCast(model, task)
        core._maybe_init(sample)  # builds the graphs from the sample's lat/lon (numpy only)
        built.append(core)

    hk.transform(build).apply({}, None, inputs)
    core = built[0]
    arrays = {
        "mesh_vertices": core._finest_mesh.vertices,
        "mesh_faces": core._finest_mesh.faces,
        "mesh_nodes_lat": core._mesh_nodes_lat,
        "mesh_nodes_lon": core._mesh_nodes_lon,
        "grid_nodes_lat": core._grid_nodes_lat,
        "grid_nodes_lon": core._grid_nodes_lon,
        "query_radius": np.asarray(core._query_radius),
    }
    for name in GRAPHS:
        graph = getattr(core, f"_{name}_graph_structure")
        for node_set, nodes in graph.nodes.items():
            arrays[f"{name}.nodes.{node_set}.features"] = nodes.features
        for key, edges in graph.edges.items():
            arrays[f"{name}.edges.{key.name}.senders"] = edges.indices.senders
            arrays[f"{name}.edges.{key.name}.receivers"] = edges.indices.receivers
            arrays[f"{name}.edges.{key.name}.features"] = edges.features
    return {key: np.asarray(value) for key, value in arrays.items()}


def max_difference_over_sigma(ours: xr.Dataset, reference: xr.Dataset, sigma: xr.Dataset) -> float:
    """The worst variable's max |ours − reference| / σ, σ from ``sigma`` (one value a variable)."""
    return max(
        float(np.abs(ours[name] - reference[name]).max() / sigma[name])
        for name in reference.data_vars
    )


def new_checkpoint(configuration: Configuration, params, model, task):
    """DeepMind's ``CheckPoint`` of freshly initialised parameters."""
    return graphcast.CheckPoint(
        params=jax.device_get(params),
        model_config=model,
        task_config=task,
        description=describe(configuration, model),
        license=LICENSE,
    )


def dump_checkpoint(value, path) -> None:
    """Writes a ``CheckPoint`` with DeepMind's ``checkpoint.dump`` (uncompressed ``np.savez``)."""
    with open(path, "wb") as handle:
        checkpoint.dump(handle, value)
