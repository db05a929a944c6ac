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
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmark  # noqa: E402  (the configurations, device description and versions)

# graphcast_zero.memory imports no JAX at module level: JAX's platform is still unsettled here
# (see compile_only_device).
from graphcast_zero.memory import REMAT_CHOICES, compiled_bytes  # noqa: E402


def doublings(largest: int) -> list[int]:
    """1, 2, 4, ... up to ``largest`` (included when it is not a power of two)."""
    values, value = [], 1
    while value < largest:
        values.append(value)
        value *= 2
    return values + [largest]


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


def cuda_plugin() -> str | None:
    """The installed JAX CUDA plugin as ``"name version"``, or None when there is none."""
    from importlib import metadata

    for name in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def compile_only_device(target_config: Path):
    """A CUDA device to compile for without a GPU, described by an XLA GPU target config file.

    On a box without a GPU the CUDA plugin fails to start when JAX looks for devices, and JAX
    then offers no CUDA topology at all; so JAX's own devices are kept to the CPU here (unless
    ``JAX_PLATFORMS`` says otherwise), which must happen before JAX first looks for devices.

    Raises:
      SystemExit: with a one-line message when the file can't be read or parsed, JAX's CUDA
        plugin is missing, or it is installed but offers no CUDA topology.
    """
    import jax
    from jax.experimental import topologies

    if not jax.config.jax_platforms:
        jax.config.update("jax_platforms", "cpu")  # no effect once JAX has looked for devices
    try:
        text = target_config.read_text()
    except OSError as error:
        raise SystemExit(f"memory_fit: cannot read {target_config}: {error.strerror}") from None
    try:
        topology = topologies.get_topology_desc(
            "memory-fit", "cuda", target_config=text, topology="1x1x1"
        )
    except NotImplementedError as error:  # jax knows no "cuda" topology
        plugin = cuda_plugin()
        if plugin is None:
            raise SystemExit(
                f"memory_fit: cannot compile for {target_config} here; it needs JAX's CUDA "
                'plugin: pip install "jax[cuda12]"'
            ) from None
        raise SystemExit(
            f"memory_fit: JAX's CUDA plugin ({plugin}, jax {jax.__version__}) is installed but "
            f"offers no CUDA topology ({error}): it failed to start (its error is printed "
            "above) or JAX looked for devices before JAX_PLATFORMS=cpu was set; run memory_fit "
            "in a fresh process, or install the plugin matching jax"
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

        from graphcast_zero import data
        from graphcast_zero.graph_cache import assemble_predictor
        from graphcast_zero.predictor import default_edge_term_reuse

        model, task, dataset, stats, params = benchmark.example(config, 1)
        inputs, targets, forcings = data.extract_inputs_targets_forcings(
            dataset, task, slice("6h", "6h")
        )
        # The edge terms are kept as a forecast on that device would keep them.
        self.platform = jax.default_backend() if device is None else device.platform
        self.base, _ = assemble_predictor(
            model, task, stats, dataset.lat.values, dataset.lon.values, precision=precision,
            reuse_edge_terms=default_edge_term_reuse(self.platform),
        )  # fmt: skip
        self.params = jax.tree.map(jnp.asarray, params)
        self.inputs = data.dataset_to_arrays(inputs)
        self.targets = data.dataset_to_arrays(targets)
        self.forcings = data.dataset_to_arrays(forcings)
        self.device = device  # None: the default device, else a compile-only target
        self._constants = {}

    @property
    def num_grid_nodes(self) -> int:
        return self.base.graphs.num_grid_nodes

    def predictor(self, plan):
        return dataclasses.replace(self.base, memory=plan)

    def constants(self, plan, prepared: bool) -> dict:
        """``predictor.constants()`` for the plan's chunking; ``prepared`` adds the shapes of
        the terms forecasts compute once (``rollout.predict`` passes them to every chunk)."""
        import jax

        key = (plan.grid_chunks, prepared)
        if key not in self._constants:
            predictor = self.predictor(plan)
            constants = predictor.constants()
            if prepared:
                shapes = jax.eval_shape(predictor.prepare, self.params, constants)
                constants = {**constants, **{k: v for k, v in shapes.items() if k == "static"}}
            self._constants[key] = constants
        return self._constants[key]

    def program(self, phase: str, plan):
        """The jitted program of a phase under a memory plan."""
        import jax

        from graphcast_zero import loss, rollout

        predictor = self.predictor(plan)
        if phase == "inference":
            # A rollout chunk as rollout.predict compiles it on that platform, streaming its
            # predictions out; without the host callback, which XLA's compile-only GPU target
            # cannot compile (the predictions it reads are computed, and counted, the same).
            return rollout.chunk_program(predictor, self.platform, sink=rollout.drop_predictions)
        # Loss + gradients over `steps` steps, rematerialised as the plan says.
        return jax.jit(functools.partial(loss.loss_and_grads, predictor))

    def operands(self, phase: str, batch: int, steps: int, plan, placed: bool = True) -> tuple:
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
            self.constants(plan, prepared=phase == "inference"),
            inputs,
            *({n: _abstract(a, batch, steps) for n, a in frames.items()} for frames in per_step),
        )
        if self.device is None or not placed:
            return operands
        return placed_on(operands, self.device)


def device_memory_size(target_config: Path) -> int | None:
    """The device memory a target config describes (``device_memory_size``), in bytes."""
    import re

    found = re.search(r"device_memory_size:\s*(\d+)", target_config.read_text())
    return int(found.group(1)) if found else None


def scheduler_options(memory_size: int | None, budget_bytes: float) -> dict:
    """XLA options that make a GPU compile schedule for ``budget_bytes`` of memory.

    XLA's GPU scheduler lets a program grow up to 95% of the device's memory when that buys
    overlap (``xla_gpu_memory_limit_slop_factor``); compiled for an 80 GB H100 a program
    meant for a 24 GB card would be scheduled for 80 GB. Setting the factor to the budget's
    share of the device compiles it as the smaller card would be compiled.
    """
    if not memory_size or budget_bytes >= memory_size:
        return {}
    return {"xla_gpu_memory_limit_slop_factor": max(1, int(95 * budget_bytes / memory_size))}


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


class Search:
    """Compiles candidates and keeps what ``--run`` and ``--flops`` need of the best."""

    def __init__(self, args, device):
        self.args = args
        self.device = device
        self.budget = args.budget_gb * 2**30
        # Compiling for a target config: schedule as a card of the budget's size would be.
        size = device_memory_size(args.target_config) if args.target_config else None
        self.options = scheduler_options(size, self.budget)
        if args.impl == "official":
            import official_programs

            self.setup = official_programs.OfficialCandidates(args.config, args.precision)
        else:
            self.setup = Candidates(args.config, args.precision, device)

    def _compile(self, program, operands):
        start = time.perf_counter()
        compiled = program.lower(*operands).compile(compiler_options=self.options or None)
        return compiled, time.perf_counter() - start

    def candidate(self, phase: str, batch: int, steps: int) -> tuple[dict, object, tuple]:
        """(entry, compiled program, its operands unplaced) of one candidate shape."""
        if self.args.impl == "official":
            program, operands = self.setup.program(phase, batch, steps)
            placed = operands if self.device is None else placed_on(operands, self.device)
            compiled, seconds = self._compile(program, placed)
            entry = {"estimated_bytes": compiled_bytes(compiled), "compile_s": seconds}
            if self.args.flops:
                entry["flops"] = count_flops(program, operands)
            return entry, compiled, operands
        return self._ours(phase, batch, steps)

    def _ours(self, phase, batch, steps):
        from graphcast_zero import memory

        args = self.args
        plans = memory.restrict(
            memory.ladder(self.setup.num_grid_nodes, phase == "training", steps),
            args.grid_chunks or None,
            args.remat,
        )
        compiled_by_plan, flops_by_plan, seconds = {}, {}, 0.0

        def measure(plan):
            nonlocal seconds
            operands = self.setup.operands(phase, batch, steps, plan)
            program = self.setup.program(phase, plan)
            compiled, took = self._compile(program, operands)
            compiled_by_plan[plan] = compiled
            seconds += took
            if args.flops:  # the price of each plan tried, the first being the whole grid
                unplaced = self.setup.operands(phase, batch, steps, plan, placed=False)
                flops_by_plan[plan] = count_flops(program, unplaced)
            return compiled_bytes(compiled)

        # Like the package's planner, but every candidate is measured, even a single one.
        choice = memory.choose(plans, measure, self.budget, measure_single=True)
        entry = {
            "estimated_bytes": choice.estimated_bytes,
            "compile_s": seconds,
            "memory_plan": dataclasses.asdict(choice.plan),
            "plans_tried": [
                {
                    **dataclasses.asdict(plan),
                    "estimated_bytes": value,
                    "flops": flops_by_plan.get(plan),
                }
                for plan, value in choice.tried
            ],
        }
        if args.flops:
            entry["flops"] = flops_by_plan[choice.plan]
        unplaced = self.setup.operands(phase, batch, steps, choice.plan, placed=False)
        return entry, compiled_by_plan[choice.plan], unplaced


def search(args, device=None) -> dict:
    """Compiles every candidate of both phases and picks the largest that fits the budget.

    ``device``: a compile-only target (``compile_only_device``), or None for the default device.
    """
    run = Search(args, device)
    report = {"budget_bytes": run.budget, "compiler_options": run.options, "phases": {}}
    plans = {
        "inference": [(b, s) for b in doublings(args.max_batch) for s in args.inference_steps],
        "training": [(b, s) for b in doublings(args.max_batch) for s in args.training_steps],
    }
    for phase in args.phases:
        candidates, best_run, best = [], None, None
        for batch, steps in plans[phase]:
            if any(
                not c["fits"] and c["batch"] <= batch and c["steps"] <= steps for c in candidates
            ):
                continue  # memory grows with batch and steps: a smaller one already overflowed
            measured, compiled, operands = run.candidate(phase, batch, steps)
            entry = {"batch": batch, "steps": steps, **measured}
            entry["fits"] = entry["estimated_bytes"] <= run.budget
            candidates.append(entry)
            plan = entry.get("memory_plan")
            print(
                f"{phase:9s} batch {batch:3d} steps {steps:3d}: "
                f"{entry['estimated_bytes'] / 2**30:8.2f} GiB {'fits' if entry['fits'] else ''}"
                + (f"  {plan}" if plan else ""),
                flush=True,
            )
            if largest_fitting(candidates, run.budget) is entry:
                best, best_run = entry, (compiled, operands)  # kept for --run
        if best is not None and args.run:
            # The device's peak is per process: a later phase's figure is the peak of both.
            best["measured_process_peak_bytes"] = measure_run(*best_run)
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


def _non_negative(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, zero or more")
    return value


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
    parser.add_argument("--impl", choices=["ours", "official"], default="ours",
                        help="official: DeepMind's code (needs `import graphcast` to work)")  # fmt: skip
    parser.add_argument("--grid-chunks", type=_non_negative, default=0,
                        help="grid chunks (0: the first plan of the ladder that fits)")  # fmt: skip
    parser.add_argument("--remat", choices=REMAT_CHOICES, default="auto",
                        help="rematerialisation (auto: the first plan that fits)")  # fmt: skip
    parser.add_argument("--flops", action="store_true",
                        help="count each candidate's FLOPs (XLA's count, loops unrolled)")  # fmt: skip
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


def count_flops(program, operands) -> float:
    """XLA's FLOP count of a program with its loops unrolled (``unrolled_flops.count_flops``)."""
    import unrolled_flops

    return unrolled_flops.count_flops(program, *operands)


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
            "implementation": args.impl,
            "memory_options": {"grid_chunks": args.grid_chunks, "remat": args.remat},
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
