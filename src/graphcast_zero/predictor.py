"""The predictor: GraphCast wrapped with normalisation, residuals, precision and channel stacking.

One function builds it from a checkpoint, statistics and a grid (``build_predictor``); its
``one_step`` maps raw input frames and the forcings of the next time to raw predictions of the next
time. Everything here is pure JAX on arrays shaped ``[batch, time, lat, lon, channels]`` per
variable; ``rollout`` and ``training`` build on it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from graphcast_zero.config import STATIC_VARIABLES, ModelConfig, TaskConfig
from graphcast_zero.memory import DEFAULT_PLAN, MemoryPlan
from graphcast_zero.model.graph import GraphCastGraphs, build_graphs
from graphcast_zero.model.graphcast import graph_arrays, transformed_core, transformed_static
from graphcast_zero.model.normalization import NormalizationArrays, normalization_arrays
from graphcast_zero.statistics import Statistics

Precision = Literal["bfloat16", "float32"]
PRECISIONS = ("bfloat16", "float32")
AUTO = "auto"  # bfloat16 on accelerators (as published), float32 on CPUs


def on_cpu(backend: str | None = None) -> bool:
    """Whether ``backend`` (``jax.default_backend()`` by default) is the CPU, where the per-device
    defaults below (precision, edge-term reuse) and buffer donation differ from accelerators."""
    return (backend or jax.default_backend()) == "cpu"


def resolve_precision(precision: str, backend: str | None = None) -> Precision:
    """The precision to run: ``auto`` becomes bfloat16 on GPUs and TPUs, float32 on CPUs.

    The official demo runs bfloat16 everywhere. CPUs without native bfloat16 arithmetic emulate
    it, which makes a step slower than in float32 (figures in ``benchmarks/``), and float32 is
    also the more exact of the two. On accelerators bfloat16 halves activation memory.

    Args:
      precision: ``auto``, ``bfloat16`` or ``float32``.
      backend: ``jax.default_backend()`` by default.

    Raises:
      ValueError: for any other name.
    """
    if precision == AUTO:
        return "float32" if on_cpu(backend) else "bfloat16"
    if precision not in PRECISIONS:
        choices = ", ".join((AUTO,) + PRECISIONS)
        raise ValueError(f"precision must be one of {choices}, not {precision!r}")
    return precision  # type: ignore[return-value]


def default_edge_term_reuse(backend: str | None = None) -> bool:
    """Whether forecasts keep the step-independent edge terms by default (``Predictor.prepare``).

    On CPUs they are a sizeable share of each step's arithmetic, worth holding in memory. On GPUs
    and TPUs recomputing them is a small part of a fast step, while holding them takes device
    memory that larger chunks and batches need (compiled sizes in ``benchmarks/``).

    Args:
      backend: ``jax.default_backend()`` by default.
    """
    return on_cpu(backend)


Frames = dict[str, jax.Array]  # {variable: [batch, time, lat, lon, channels]}


# eq=False: hashed by identity, so a predictor can be closed over by jitted functions.
@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
    """A GraphCast model ready to run on one grid.

    Attributes:
      model_config: the architecture.
      task_config: variables, levels and input duration.
      lat, lon: the grid in degrees.
      graphs: the graphs built for this grid.
      normalization: per-variable statistics arrays.
      precision: ``bfloat16`` (the official demo's mode: float32 parameters and statistics,
        network activations in bfloat16) or ``float32``.
      gather_first_layer: the faster, mathematically equal edge-MLP evaluation.
      reuse_edge_terms: whether ``prepare`` computes the step-independent edge terms once per
        forecast (see ``default_edge_term_reuse``); when False each step computes its own.
      memory: grid chunks and rematerialisation (``MemoryPlan``; the maths is the same).
    """

    model_config: ModelConfig
    task_config: TaskConfig
    lat: np.ndarray
    lon: np.ndarray
    graphs: GraphCastGraphs
    normalization: NormalizationArrays
    precision: Precision = "bfloat16"
    gather_first_layer: bool = True
    reuse_edge_terms: bool = True
    memory: MemoryPlan = DEFAULT_PLAN

    @property
    def core(self) -> hk.Transformed:
        return transformed_core(
            self.model_config, self.task_config, self.gather_first_layer, self.memory
        )

    @property
    def compute_dtype(self):
        return jnp.bfloat16 if self.precision == "bfloat16" else jnp.float32

    @property
    def dynamic_inputs(self) -> tuple[str, ...]:
        """Input variables that change with time: fed back from predictions or forcings."""
        return tuple(n for n in self.task_config.input_variables if n not in STATIC_VARIABLES)

    def constants(self) -> dict:
        """The arrays every call needs besides the parameters: graph and statistics."""
        graph = graph_arrays(self.graphs, self.memory.grid_chunks)
        return {"graph": graph, "normalization": self.normalization}

    def _cast(self, params):
        # Parameters are stored in float32; the network runs in the compute dtype.
        return jax.tree.map(lambda p: p.astype(self.compute_dtype), params)

    def prepare(self, params, constants) -> dict:
        """``constants`` plus the terms of a step that depend only on ``params`` and the graph.

        The encoded edges and their share of the first edge updates are the same at every step of
        a forecast; computing them once saves that share of every later step. The result is only
        valid for these parameters: pass ``constants()`` again after the parameters change.
        Already prepared constants, and any constants when ``reuse_edge_terms`` is off, are
        returned unchanged.
        """
        if "static" in constants or not self.reuse_edge_terms:
            return constants
        static_terms = transformed_static(
            self.model_config,
            self.task_config,
            self.gather_first_layer,
            self.compute_dtype,
            self.memory,
        )
        static = static_terms.apply(self._cast(params), None, constants["graph"])
        return {**constants, "static": static}

    def normalized_outputs(self, params, constants, inputs: Frames, forcings: Frames) -> jax.Array:
        """The network's raw output for one step: [batch, lat, lon, outputs] float32.

        The arguments are those of ``network_outputs``, whose result this is in float32.
        """
        return self.network_outputs(params, constants, inputs, forcings).astype(jnp.float32)

    def network_outputs(self, params, constants, inputs: Frames, forcings: Frames) -> jax.Array:
        """The network's output for one step as it computes it: [batch, lat, lon, outputs] in
        the compute dtype (bfloat16 in half the memory of ``normalized_outputs``).

        Args:
          params: haiku parameters (float32).
          constants: ``self.constants()``, or ``self.prepare(params, constants)`` to reuse the
            step-independent terms.
          inputs: every input variable, [batch, frames, lat, lon, channels] (static ones: 1 frame).
          forcings: every forcing variable at the predicted time, [batch, 1, lat, lon, channels].
        """
        norm = constants["normalization"]
        stacked = [
            _stack_frames((inputs[n] - norm["mean"][n]) / norm["stddev"][n])
            for n in sorted(self.task_config.input_variables)
        ] + [
            _stack_frames((forcings[n] - norm["mean"][n]) / norm["stddev"][n])
            for n in sorted(self.task_config.forcing_variables)
        ]
        # Static variables carry no batch axis in the files: broadcast them to the batch.
        batch = max(x.shape[0] for x in stacked)
        stacked = [jnp.broadcast_to(x, (batch,) + x.shape[1:]) for x in stacked]
        features = jnp.concatenate(stacked, axis=-1)  # [batch, lat, lon, channels]
        _, num_lat, num_lon, channels = features.shape
        grid_inputs = features.transpose(1, 2, 0, 3).reshape(num_lat * num_lon, batch, channels)
        dtype = self.compute_dtype
        outputs = self.core.apply(
            self._cast(params),
            None,
            grid_inputs.astype(dtype),
            constants["graph"],
            constants.get("static"),
        )
        outputs = outputs.reshape(num_lat, num_lon, batch, -1)
        return outputs.transpose(2, 0, 1, 3)

    def split_outputs(self, outputs: jax.Array) -> Frames:
        """[batch, lat, lon, outputs] → per target variable [batch, 1, lat, lon, channels]."""
        frames, start = {}, 0
        for name in sorted(self.task_config.target_variables):
            width = int(np.size(self._scale_for(name)))
            frames[name] = outputs[:, None, :, :, start : start + width]
            start += width
        return frames

    def _scale_for(self, name: str) -> np.ndarray:
        if name in self.normalization["diffs_stddev"]:
            return self.normalization["diffs_stddev"][name]
        return self.normalization["stddev"][name]

    def one_step(self, params, constants, inputs: Frames, forcings: Frames) -> Frames:
        """Raw predictions of the next frame: per target, [batch, 1, lat, lon, channels]."""
        outputs = self.split_outputs(self.normalized_outputs(params, constants, inputs, forcings))
        return self.denormalize(constants, inputs, outputs)

    def denormalize(self, constants, inputs: Frames, outputs: Frames) -> Frames:
        """Undoes the residual/target normalisation of the network outputs."""
        norm = constants["normalization"]
        predictions = {}
        for name, output in outputs.items():
            if name in norm["diffs_stddev"]:
                predictions[name] = output * norm["diffs_stddev"][name] + inputs[name][:, -1:]
            else:
                predictions[name] = output * norm["stddev"][name] + norm["mean"][name]
        return predictions

    def normalize_targets(self, constants, inputs: Frames, targets: Frames) -> Frames:
        """Targets in the units the network predicts: normalised residuals or values."""
        norm = constants["normalization"]
        normalized = {}
        for name, target in targets.items():
            if name in norm["diffs_stddev"]:
                normalized[name] = (target - inputs[name][:, -1:]) / norm["diffs_stddev"][name]
            else:
                normalized[name] = (target - norm["mean"][name]) / norm["stddev"][name]
        return normalized

    def next_frame(self, predictions: Frames, forcings: Frames) -> Frames:
        """The newest input frame of the next step: per dynamic input, [batch, 1, lat, lon, ch],
        predicted or (for forcings that are also inputs) forced."""
        return {
            name: predictions[name] if name in predictions else forcings[name]
            for name in self.dynamic_inputs
        }


def shift_in(window: Frames, frame: Frames) -> Frames:
    """Drops the oldest frame of each variable in ``frame`` and appends the new one (axis 1)."""
    return {n: jnp.concatenate([window[n][:, 1:], frame[n]], axis=1) for n in frame}


def _stack_frames(x: jax.Array) -> jax.Array:
    # [batch, time, lat, lon, channels] -> [batch, lat, lon, time * channels] (time outer).
    batch, frames, num_lat, num_lon, channels = x.shape
    return jnp.moveaxis(x, 1, 3).reshape(batch, num_lat, num_lon, frames * channels)


def build_predictor(
    model_config: ModelConfig,
    task_config: TaskConfig,
    statistics: Statistics,
    lat: np.ndarray,
    lon: np.ndarray,
    precision: Precision = "bfloat16",
    gather_first_layer: bool = True,
    graphs: GraphCastGraphs | None = None,
    reuse_edge_terms: bool | None = None,
    memory: MemoryPlan = DEFAULT_PLAN,
) -> Predictor:
    """Builds the graphs and statistics arrays for a grid and returns the predictor.

    Args:
      model_config, task_config: usually from the checkpoint.
      statistics: the three statistics datasets.
      lat, lon: grid coordinates in degrees (lat ascending, lon from 0).
      precision: ``bfloat16`` (default, as the official demo runs), ``float32``, or ``auto``
        (see ``resolve_precision``).
      gather_first_layer: use the faster edge-MLP evaluation (same maths).
      graphs: prebuilt graphs for this grid, if cached.
      reuse_edge_terms: keep the step-independent edge terms for a whole forecast; None
        chooses by device (``default_edge_term_reuse``).
      memory: grid chunks and rematerialisation (default: none).
    """
    precision = resolve_precision(precision)
    if reuse_edge_terms is None:
        reuse_edge_terms = default_edge_term_reuse()
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    return Predictor(
        model_config=model_config,
        task_config=task_config,
        lat=lat,
        lon=lon,
        graphs=graphs or build_graphs(model_config, lat, lon),
        normalization=normalization_arrays(statistics, task_config),
        precision=precision,
        gather_first_layer=gather_first_layer,
        reuse_edge_terms=reuse_edge_terms,
        memory=memory,
    )
