"""The largest GraphCast configuration that fits a device's memory, for inference and training.

For each candidate (batch size and steps per compiled call for inference; batch size and loss
steps for training) the program is compiled from abstract shapes, without allocating or running
anything, and XLA's own buffer assignment gives its device memory: arguments + outputs +
temporaries − aliased. That is what XLA will allocate on the device it compiled for, so run it on
the device in question (on a CPU it describes the CPU's compilation, a rough guide only).
``--run`` then executes the largest fitting candidate of each phase once on zeros and records the
process's measured peak (``peak_bytes_in_use``, GPUs only; it never goes down, so run one phase
per process for a figure of that phase alone).

Without the GPU, ``--target-config`` compiles for a compile-only CUDA device described by an XLA
GPU target config (``targets/h100-sxm-80gb.txtpb``): XLA's GPU compiler does the same buffer
assignment as on the card. It needs JAX's CUDA plugin (``pip install "jax[cuda12]"``), not a GPU
or a driver.

Usage (from the repository root)::

    python benchmarks/memory_fit.py --config full --budget-gb 80
    python benchmarks/memory_fit.py --config full --target-config benchmarks/targets/h100-sxm-80gb.txtpb
    python benchmarks/memory_fit.py --config tiny --budget-gb 0.05 --max-batch 4   # smoke test

Writes ``benchmarks/results/<device>-<config>-memory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmark  # noqa: E402  (the configurations, device description and versions)


def doublings(largest: int) -> list[int]:
    """1, 2, 4, ... up to ``largest`` (included when it is not a power of two)."""
    values, value = [], 1
    while value < largest:
        values.append(value)
        value *= 2
    return values + [largest]


def peak_bytes(stats) -> int:
    """Device bytes a compiled program needs at once, from ``compiled.memory_analysis()``."""
    return (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def largest_fitting(candidates: list[dict], budget_bytes: float) -> dict | None:
    """The candidate with the most work (batch × steps) whose estimate fits the budget."""
    fitting = [c for c in candidates if c["estimated_bytes"] <= budget_bytes]
    return max(fitting, key=lambda c: (c["batch"] * c["steps"], c["batch"]), default=None)


def _abstract(array, batch: int, steps: int | None = None):
    """A shape-only copy of a ``[batch, time, ...]`` array with a new batch (and time) size."""
    import jax

    shape = list(array.shape)
    shape[0] = batch
    if steps is not None:
        shape[1] = steps
    return jax.ShapeDtypeStruct(tuple(shape), array.dtype)


def compile_only_device(target_config: Path):
    """A CUDA device to compile for without a GPU, described by an XLA GPU target config file.

    Raises:
      SystemExit: with a one-line message when the file can't be read or parsed, or JAX's CUDA
        plugin is missing.
    """
    from jax.experimental import topologies

    try:
        text = target_config.read_text()
    except OSError as error:
        raise SystemExit(f"memory_fit: cannot read {target_config}: {error.strerror}") from None
    try:
        topology = topologies.get_topology_desc(
            "memory-fit", "cuda", target_config=text, topology="1x1x1"
        )
    except NotImplementedError:  # no CUDA plugin: jax knows no "cuda" topology
        raise SystemExit(
            f"memory_fit: cannot compile for {target_config} here; it needs JAX's CUDA plugin: "
            'pip install "jax[cuda12]"'
        ) from None
    except Exception as error:  # the plugin rejected the file's text
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SystemExit(
            f"memory_fit: {target_config} is not a valid XLA GPU target config ({reason}); "
            "start from benchmarks/targets/h100-sxm-80gb.txtpb"
        ) from None
    return topology.devices[0]


def placed_on(tree, device):
    """Every array leaf of ``tree`` as an abstract shape on ``device`` (compile-only devices
    hold no data, so parameters and constants become shapes too)."""
    import jax

    sharding = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding), tree
    )


class Candidates:
    """One configuration's predictor and example shapes, to compile candidates from."""

    def __init__(self, config: str, precision: str, device=None):
        import jax
        import jax.numpy as jnp

        from graphcast_zero import data, loss, rollout
        from graphcast_zero.graph_cache import assemble_predictor
        from graphcast_zero.predictor import default_edge_term_reuse

        model, task, dataset, stats, params = benchmark.example(config, 1)
        inputs, targets, forcings = data.extract_inputs_targets_forcings(
            dataset, task, slice("6h", "6h")
        )
        # The edge terms are kept as a forecast on that device would keep them.
        platform = jax.default_backend() if device is None else device.platform
        self.predictor, _ = assemble_predictor(
            model, task, stats, dataset.lat.values, dataset.lon.values, precision=precision,
            reuse_edge_terms=default_edge_term_reuse(platform),
        )  # fmt: skip
        self.params = jax.tree.map(jnp.asarray, params)
        self.constants = self.predictor.constants()
        # Forecasts (rollout.predict) prepare the constants once and pass them to every chunk;
        # only the shapes of the prepared terms are needed.
        prepared = jax.eval_shape(self.predictor.prepare, self.params, self.constants)
        static = {"static": prepared["static"]} if "static" in prepared else {}
        self.prepared = {**self.constants, **static}
        self.inputs = data.dataset_to_arrays(inputs)
        self.targets = data.dataset_to_arrays(targets)
        self.forcings = data.dataset_to_arrays(forcings)
        self.device = device  # None: the default device, else a compile-only target
        self.programs = {
            # A rollout chunk of `steps` steps for `batch` forecasts, compiled as
            # rollout.predict compiles it on that platform.
            "inference": rollout.chunk_program(self.predictor, platform),
            # Loss + gradients over `steps` steps, rematerialised per step beyond one.
            "training": jax.jit(functools.partial(loss.loss_and_grads, self.predictor, remat=True)),
        }

    def operands(self, phase: str, batch: int, steps: int) -> tuple:
        """The program's arguments: parameters and constants, the rest as abstract shapes."""
        from graphcast_zero.config import STATIC_VARIABLES

        # Static variables keep their batch of 1: the predictor broadcasts them.
        inputs = {
            name: _abstract(array, 1 if name in STATIC_VARIABLES else batch)
            for name, array in self.inputs.items()
        }
        per_step = [self.forcings] if phase == "inference" else [self.targets, self.forcings]
        operands = (
            self.params,
            self.prepared if phase == "inference" else self.constants,
            inputs,
            *({n: _abstract(a, batch, steps) for n, a in frames.items()} for frames in per_step),
        )
        return operands if self.device is None else placed_on(operands, self.device)

    def compile(self, phase: str, batch: int, steps: int):
        """The compiled program of one candidate."""
        return self.programs[phase].lower(*self.operands(phase, batch, steps)).compile()


def measure_run(compiled, operands) -> float | None:
    """Runs a compiled program once, abstract operands as zeros; the process's peak device bytes
    so far (GPU only: CPUs report none)."""
    import jax
    import jax.numpy as jnp

    operands = jax.tree.map(
        lambda leaf: (
            jnp.zeros(leaf.shape, leaf.dtype) if isinstance(leaf, jax.ShapeDtypeStruct) else leaf
        ),
        operands,
    )
    jax.block_until_ready(compiled(*operands))
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def search(args, device=None) -> dict:
    """Compiles every candidate of both phases and picks the largest that fits the budget.

    ``device``: a compile-only target (``compile_only_device``), or None for the default device.
    """
    budget = args.budget_gb * 2**30
    setup = Candidates(args.config, args.precision, device)
    report = {"budget_bytes": budget, "phases": {}}
    plans = {
        "inference": [(b, s) for b in doublings(args.max_batch) for s in args.inference_steps],
        "training": [(b, s) for b in doublings(args.max_batch) for s in args.training_steps],
    }
    for phase in args.phases:
        candidates, compiled_best, best = [], None, None
        for batch, steps in plans[phase]:
            if any(
                not c["fits"] and c["batch"] <= batch and c["steps"] <= steps for c in candidates
            ):
                continue  # memory grows with batch and steps: a smaller one already overflowed
            start = time.perf_counter()
            compiled = setup.compile(phase, batch, steps)
            entry = {
                "batch": batch,
                "steps": steps,
                "estimated_bytes": peak_bytes(compiled.memory_analysis()),
                "compile_s": time.perf_counter() - start,
            }
            entry["fits"] = entry["estimated_bytes"] <= budget
            candidates.append(entry)
            print(
                f"{phase:9s} batch {batch:3d} steps {steps:3d}: "
                f"{entry['estimated_bytes'] / 2**30:8.2f} GiB {'fits' if entry['fits'] else ''}",
                flush=True,
            )
            if largest_fitting(candidates, budget) is entry:
                best, compiled_best = entry, compiled  # kept for --run: no second compile
        if best is not None and args.run:
            # The device's peak is per process: a later phase's figure is the peak of both.
            best["measured_process_peak_bytes"] = measure_run(
                compiled_best, setup.operands(phase, best["batch"], best["steps"])
            )
        report["phases"][phase] = {"candidates": candidates, "largest_fitting": best}
    return report


def _positive(kind):
    """An argparse type: a number of ``kind`` (int or float) above zero, else a usage error."""
    noun = "whole number" if kind is int else "number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun} above zero")
        return value

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(benchmark.CONFIGS), default="full")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="bfloat16")
    parser.add_argument(
        "--budget-gb", type=_positive(float), default=80.0, help="device memory, GiB"
    )
    parser.add_argument("--phases", nargs="+", choices=["inference", "training"],
                        default=["inference", "training"])  # fmt: skip
    parser.add_argument("--max-batch", type=_positive(int), default=16)
    parser.add_argument("--inference-steps", type=_positive(int), nargs="+", default=[1, 4, 10, 40],
                        help="steps per compiled rollout chunk to try")  # fmt: skip
    parser.add_argument("--training-steps", type=_positive(int), nargs="+", default=[1, 4, 12],
                        help="autoregressive steps in the loss to try")  # fmt: skip
    parser.add_argument("--run", action="store_true",
                        help="run the largest fitting candidates once and record the peak")  # fmt: skip
    parser.add_argument("--target-config", type=Path,
                        help="XLA GPU target config: compile for that GPU without one (no --run)")  # fmt: skip
    parser.add_argument(
        "--output", help="JSON path (default: results/<device>-<config>-memory.json)"
    )
    args = parser.parse_args(argv)
    if args.run and args.target_config is not None:
        parser.error("--run needs the device itself; --target-config only compiles")
    return args


def target_info(device, target_config: Path) -> dict:
    """The device description of a compile-only target, in ``benchmark.device_info``'s shape."""
    host = benchmark.device_info()
    return {
        "platform": "gpu",
        "device_kind": device.device_kind,
        "device_count": 1,
        "compile_only": True,
        "target_config": target_config.name,
        "cpu_model": host["cpu_model"],
        "cpu_count": host["cpu_count"],
    }


def main(argv=None) -> dict:
    from graphcast_zero.atomic import write_json

    args = parse_args(argv)
    if args.target_config is not None:
        # A CPU-only box: keep the CUDA plugin from looking for a GPU it would not find.
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        device = compile_only_device(args.target_config)
        info = target_info(device, args.target_config)
        label = benchmark.device_label(info) + "-compile-only"
        source = f"compiled without the device, for {args.target_config.name}"
    else:
        device, info, source = None, benchmark.device_info(), "compiled for the device"
        label = benchmark.device_label(info)
    model, task, resolution = benchmark.configs(args.config)
    report = {
        "format": "graphcast-zero-memory-fit/1",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": info,
        "versions": benchmark.versions(),
        "configuration": {
            "name": args.config,
            "precision": args.precision,
            "model": dataclasses.asdict(model),
            "pressure_levels": len(task.pressure_levels),
            "grid_resolution_deg": resolution,
            "estimate": "XLA buffer assignment of the compiled program: "
            "arguments + outputs + temporaries - aliased",
            "estimate_source": source,
        },
        **search(args, device),
    }
    output = Path(args.output or HERE / "results" / f"{label}-{args.config}-memory.json")
    write_json(report, output)  # atomic: a stopped run leaves the last whole file
    for phase, result in report["phases"].items():
        best = result["largest_fitting"]
        text = "nothing fits" if best is None else (
            f"batch {best['batch']}, {best['steps']} steps, "
            f"{best['estimated_bytes'] / 2**30:.2f} GiB estimated"
        )  # fmt: skip
        print(f"largest {phase} within {args.budget_gb} GiB: {text}")
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
