"""One GraphCast step on normalised grid features: grid → mesh, message passing, mesh → grid.

``graphcast_core`` runs inside ``hk.transform``. It takes the stacked, normalised inputs and
forcings of every grid node and returns the normalised outputs of every grid node; the
normalisation, residuals and channel stacking around it live in ``predictor``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.config import ATMOSPHERIC_VARIABLES, STATIC_VARIABLES, ModelConfig, TaskConfig
from graphcast_zero.memory import DEFAULT_PLAN, MemoryPlan
from graphcast_zero.model import grid_chunks
from graphcast_zero.model.gnn import EdgeSetInputs, TypedGraphNetwork
from graphcast_zero.model.graph import GraphCastGraphs, build_graphs

GRID, MESH = "grid_nodes", "mesh_nodes"


def variable_channels(name: str, task_config: TaskConfig) -> int:
    """Channels one frame of a variable occupies: one per level, or one."""
    return len(task_config.pressure_levels) if name in ATMOSPHERIC_VARIABLES else 1


def num_input_channels(task_config: TaskConfig) -> int:
    """Width of the stacked inputs and forcings of one grid node (before structural features)."""
    frames = task_config.input_frames
    inputs = sum(
        variable_channels(name, task_config) * (1 if name in STATIC_VARIABLES else frames)
        for name in task_config.input_variables
    )
    forcings = sum(variable_channels(name, task_config) for name in task_config.forcing_variables)
    return inputs + forcings


def num_output_channels(task_config: TaskConfig) -> int:
    """Width of the decoder output: one channel per surface target, one per level otherwise."""
    return sum(variable_channels(name, task_config) for name in task_config.target_variables)


def graph_arrays(graphs: GraphCastGraphs, num_chunks: int = 1) -> dict:
    """The graph as a pytree of arrays, to pass into jitted functions as an argument.

    Passing the graph as an argument (rather than closing over it) keeps large index arrays out of
    the compiled program, which matters at 0.25° where grid2mesh has millions of edges.

    Args:
      graphs: the graphs.
      num_chunks: with more than one, the grid→mesh and mesh→grid edges come grouped by chunk
        of grid nodes (``grid_chunks.chunk_edges``), as ``MemoryPlan.grid_chunks`` runs them.
    """

    def edge_set(edges):
        return {"senders": edges.senders, "receivers": edges.receivers, "features": edges.features}

    def grid_edges(edges, grid_end):
        if num_chunks == 1:
            return edge_set(edges)
        return grid_chunks.chunk_edges(
            edges, grid_end, graphs.num_grid_nodes, num_chunks, graphs.num_mesh_nodes
        )

    return {
        "grid_node_features": graphs.grid_node_features,
        "mesh_node_features": graphs.mesh_node_features,
        "grid2mesh": grid_edges(graphs.grid2mesh, "senders"),
        "mesh": edge_set(graphs.mesh),
        "mesh2grid": grid_edges(graphs.mesh2grid, "receivers"),
    }


def _edges(graph: dict, name: str, sender: str, receiver: str, dtype) -> EdgeSetInputs:
    edges = graph[name]
    return EdgeSetInputs(
        sender_set=sender,
        receiver_set=receiver,
        senders=edges["senders"],
        receivers=edges["receivers"],
        features=edges["features"].astype(dtype),
    )


def _edge_sets(graph: dict, dtype, memory: MemoryPlan) -> dict[str, dict[str, EdgeSetInputs]]:
    """Per network, its edge sets (only the processor's when the grid side runs in chunks)."""
    edge_sets = {"mesh": {"mesh": _edges(graph, "mesh", MESH, MESH, dtype)}}
    if not memory.chunked:
        edge_sets["grid2mesh"] = {"grid2mesh": _edges(graph, "grid2mesh", GRID, MESH, dtype)}
        edge_sets["mesh2grid"] = {"mesh2grid": _edges(graph, "mesh2grid", MESH, GRID, dtype)}
    return edge_sets


def _networks(
    model_config: ModelConfig,
    num_outputs: int,
    gather_first_layer: bool,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> dict[str, TypedGraphNetwork]:
    """The encoder, processor and decoder networks (call inside ``hk.transform``)."""
    common = dict(
        latent_size=model_config.latent_size,
        hidden_layers=model_config.hidden_layers,
        gather_first_layer=gather_first_layer,
    )
    return {
        "grid2mesh": TypedGraphNetwork(
            name="grid2mesh_gnn",
            node_sets=(GRID, MESH),
            edge_sets=("grid2mesh",),
            message_steps=1,
            embed_nodes=True,
            f32_aggregation=True,
            **common,
        ),
        "mesh": TypedGraphNetwork(
            name="mesh_gnn",
            node_sets=(MESH,),
            edge_sets=("mesh",),
            message_steps=model_config.gnn_msg_steps,
            embed_nodes=False,
            remat_group=memory.remat_processor,
            **common,
        ),
        "mesh2grid": TypedGraphNetwork(
            name="mesh2grid_gnn",
            node_sets=(GRID, MESH),
            edge_sets=("mesh2grid",),
            message_steps=1,
            embed_nodes=False,
            node_output_sizes={GRID: num_outputs},
            **common,
        ),
    }


def graphcast_static(
    graph: dict,
    model_config: ModelConfig,
    num_outputs: int,
    gather_first_layer: bool,
    dtype,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> dict:
    """The parts of a step that depend only on parameters and graph (call inside ``hk.transform``).

    These are the encoded edges of the three networks and their share of each network's first
    edge update: a sizeable part of a step's work. A forecast computes them once and passes
    them to every step as ``graphcast_core(..., static=...)``. With the grid side in chunks only
    the processor's are kept: holding the grid side's would undo what chunking saves.

    Returns:
      ``{network: {edge_set: {term: array}}}``; see ``TypedGraphNetwork.static_edges``.
    """
    networks = _networks(model_config, num_outputs, gather_first_layer, memory)
    return _static_terms(networks, _edge_sets(graph, dtype, memory))


def _static_terms(networks: dict[str, TypedGraphNetwork], edge_sets: dict) -> dict:
    return {name: networks[name].static_edges(edge_sets[name]) for name in edge_sets}


def graphcast_core(
    grid_inputs: jax.Array,
    graph: dict,
    model_config: ModelConfig,
    num_outputs: int,
    gather_first_layer: bool = False,
    static: Optional[dict] = None,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> jax.Array:
    """One step of the GraphCast network (call inside ``hk.transform``).

    Args:
      grid_inputs: [num_grid_nodes, batch, channels] normalised inputs then forcings, in the
        dtype the network runs in.
      graph: ``graph_arrays(build_graphs(...), memory.grid_chunks)``.
      model_config: the architecture.
      num_outputs: decoder output width (``num_output_channels``).
      gather_first_layer: see ``TypedGraphNetwork``.
      static: ``graphcast_static(...)`` for the same parameters, graph and memory plan, or None
        to compute those terms inside this step.
      memory: grid chunks and rematerialisation (same maths).

    Returns:
      [num_grid_nodes, batch, num_outputs] normalised outputs, in the input dtype.
    """
    dtype = grid_inputs.dtype
    num_grid_nodes = grid_inputs.shape[0]
    num_mesh_nodes = graph["mesh_node_features"].shape[0]
    networks = _networks(model_config, num_outputs, gather_first_layer, memory)
    edge_sets = _edge_sets(graph, dtype, memory)
    if static is None:  # outside vmap: once per batch
        # With processor remat the processor computes its own inside its first remat group.
        later = {"mesh"} if memory.remat_processor else set()
        static = _static_terms(networks, {k: v for k, v in edge_sets.items() if k not in later})
    grid_features = graph["grid_node_features"].astype(dtype)
    # Mesh nodes get zeros in place of the grid's inputs, so both encoders have the same width.
    mesh_nodes = jnp.concatenate(
        [
            jnp.zeros((num_mesh_nodes, grid_inputs.shape[-1]), dtype),
            graph["mesh_node_features"].astype(dtype),
        ],
        axis=-1,
    )  # [num_mesh_nodes, channels + 3]

    def process(mesh_latents: jax.Array) -> jax.Array:
        return networks["mesh"]({MESH: mesh_latents}, edge_sets["mesh"], static.get("mesh"))[MESH]

    def one_example(inputs: jax.Array) -> jax.Array:
        # inputs: [num_grid_nodes, channels]
        grid_nodes = jnp.concatenate([inputs, grid_features], axis=-1)  # [.., channels + 3]
        latents = networks["grid2mesh"](
            {GRID: grid_nodes, MESH: mesh_nodes}, edge_sets["grid2mesh"], static["grid2mesh"]
        )
        outputs = networks["mesh2grid"](
            {GRID: latents[GRID], MESH: process(latents[MESH])},
            edge_sets["mesh2grid"],
            static["mesh2grid"],
        )
        return outputs[GRID]  # [num_grid_nodes, num_outputs]

    def one_example_in_chunks(inputs: jax.Array) -> jax.Array:
        grid_nodes = jnp.concatenate([inputs, grid_features], axis=-1)  # [.., channels + 3]
        chunks = grid_chunks.split_nodes(grid_nodes, memory.grid_chunks)
        grid, mesh = grid_chunks.encode(
            networks["grid2mesh"], chunks, mesh_nodes, graph["grid2mesh"]
        )  # [chunks, chunk_nodes, latent], [num_mesh_nodes, latent]
        outputs = grid_chunks.decode(networks["mesh2grid"], grid, process(mesh), graph["mesh2grid"])
        return grid_chunks.join_nodes(outputs, num_grid_nodes)  # [num_grid_nodes, num_outputs]

    # Batch elements share parameters, graph and static terms: vmap maps only the inputs, and
    # everything else (the mesh nodes' embedding too) is computed once for the whole batch.
    run = one_example_in_chunks if memory.chunked else one_example
    return hk.vmap(run, in_axes=1, out_axes=1, split_rng=False)(grid_inputs)


def transformed_core(
    model_config: ModelConfig,
    task_config: TaskConfig,
    gather_first_layer: bool = False,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> hk.Transformed:
    """``graphcast_core`` as a haiku pair ``init(rng, grid_inputs, graph)``/``apply(params, None,
    grid_inputs, graph, static=None)``."""
    num_outputs = num_output_channels(task_config)

    def forward(grid_inputs, graph, static=None):
        return graphcast_core(
            grid_inputs, graph, model_config, num_outputs, gather_first_layer, static, memory
        )

    return hk.transform(forward)


def transformed_static(
    model_config: ModelConfig,
    task_config: TaskConfig,
    gather_first_layer: bool,
    dtype,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> hk.Transformed:
    """``graphcast_static`` as a haiku pair; ``apply(params, None, graph)`` gives the terms."""
    num_outputs = num_output_channels(task_config)

    def static(graph):
        return graphcast_static(graph, model_config, num_outputs, gather_first_layer, dtype, memory)

    return hk.transform(static)


def parameter_shapes(
    model_config: ModelConfig, task_config: TaskConfig, graphs: GraphCastGraphs
) -> dict[str, dict[str, jax.ShapeDtypeStruct]]:
    """The parameter tree (paths, shapes, float32 dtypes) without compiling or running anything."""
    grid_inputs = jax.ShapeDtypeStruct(
        (graphs.num_grid_nodes, 1, num_input_channels(task_config)), jnp.float32
    )
    core = transformed_core(model_config, task_config)
    return jax.eval_shape(core.init, jax.random.PRNGKey(0), grid_inputs, graph_arrays(graphs))


def _truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    # Normal truncated at ±2σ, rescaled so the truncated distribution has standard deviation
    # `stddev`: the same distribution as haiku's TruncatedNormal initialiser.
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(outside.sum())
        outside = np.abs(values) > 2
    return (values * stddev / 0.87962566103423978).astype(np.float32)


def init_params(
    model_config: ModelConfig,
    task_config: TaskConfig,
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    seed: int = 0,
    graphs: Optional[GraphCastGraphs] = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 parameters with the published parameter tree for this configuration.

    Linear weights are truncated normal with standard deviation 1/sqrt(fan_in), biases zero,
    LayerNorm scales one and offsets zero: haiku's defaults, drawn with numpy so that a large
    model initialises without compiling it.

    Args:
      model_config: the architecture.
      task_config: the variables and levels (they set the encoder and decoder widths).
      lat_deg, lon_deg: a grid to build the graphs on (any grid: parameters do not depend on it).
      seed: the random seed.
      graphs: prebuilt graphs for this grid, to skip building them again.

    Returns:
      ``{module_path: {name: float32 array}}`` as numpy arrays.
    """
    graphs = graphs or build_graphs(model_config, np.asarray(lat_deg), np.asarray(lon_deg))
    rng = np.random.default_rng(seed)
    params: dict[str, dict[str, np.ndarray]] = {}
    for module, leaves in sorted(parameter_shapes(model_config, task_config, graphs).items()):
        params[module] = {}
        for name, leaf in sorted(leaves.items()):
            if name == "w":
                params[module][name] = _truncated_normal(
                    rng, leaf.shape, 1 / np.sqrt(leaf.shape[0])
                )
            elif name == "scale":
                params[module][name] = np.ones(leaf.shape, np.float32)
            else:  # biases and LayerNorm offsets
                params[module][name] = np.zeros(leaf.shape, np.float32)
    return params


def describe(model_config: ModelConfig) -> str:
    """A one-line human description of an architecture."""
    fields = dataclasses.asdict(model_config)
    return ", ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
