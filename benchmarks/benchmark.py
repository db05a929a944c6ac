"""Speed and memory benchmark of GraphCast: ours and, when importable, DeepMind's side by side.

Each measurement runs in a fresh subprocess (a "worker"), so its peak resident memory
(``ru_maxrss``) belongs to that measurement alone: XLA allocates outside Python's heap, so
``tracemalloc`` would miss most of it. Workers of the two implementations alternate (ours,
official, ours, official, ...) so both see similar machine load, and the load average is recorded
at the start and end of the run.

Both implementations get the same configuration, the same synthetic inputs (``synthetic``'s generator,
same seed), the same real statistics and the same random parameters (the parameter trees are
identical). The official code runs as its demo runs it: ``GraphCast`` → ``Bfloat16Cast`` →
``InputsAndResiduals`` → ``autoregressive.Predictor(gradient_checkpointing=True)``, one jitted
call per 6-hour step (``rollout.chunked_prediction``). Ours runs one compiled ``lax.scan``.

Usage (from the repository root)::

    python benchmarks/benchmark.py --config small              # ours only
    /path/to/venv-with-graphcast/bin/python benchmarks/benchmark.py --config small --compare

Writes ``benchmarks/results/<device>-<config>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import statistics as pystats
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATS_DIR = REPO / "tests" / "data" / "real-stats"
ROLLOUT_TARGET_STEPS = 40  # a 10-day forecast

# name -> (model preset or overrides, levels, grid resolution in degrees)
CONFIGS = {
    "small": dict(base="small", resolution=1.0),
    "full": dict(base="full", resolution=0.25),
    "operational": dict(base="operational", resolution=0.25),
    # Fast configurations for smoke tests and quick comparisons.
    "tiny": dict(base="small", resolution=10.0, mesh_size=2, latent_size=32, gnn_msg_steps=2),
    "medium": dict(base="small", resolution=2.0, mesh_size=4, latent_size=128, gnn_msg_steps=4),
}


# ------------------------------------------------------------------------------ configuration


def configs(name: str):
    """(ModelConfig, TaskConfig, resolution) of a named benchmark configuration."""
    from graphcast_zero.config import PUBLISHED_MODELS

    spec = dict(CONFIGS[name])
    published = PUBLISHED_MODELS[spec.pop("base")]
    resolution = spec.pop("resolution")
    model = dataclasses.replace(published.model_config, resolution=resolution, **spec)
    return model, published.task_config, resolution


def example(name: str, steps: int):
    """The synthetic dataset, real statistics and random parameters both implementations use."""
    from graphcast_zero import synthetic
    from graphcast_zero.model.graphcast import init_params
    from graphcast_zero.statistics import load_statistics

    model, task, resolution = configs(name)
    dataset = synthetic.make_example_dataset(
        resolution=resolution, steps=steps, levels=len(task.pressure_levels), seed=0
    )
    lat, lon = dataset.lat.values, dataset.lon.values
    params = init_params(model, task, lat, lon, seed=0)
    return model, task, dataset, load_statistics(STATS_DIR), params


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    import jax

    jax.block_until_ready(result)
    return result, time.perf_counter() - start


def _wall_and_cpu(fn, *args) -> tuple[float, float]:
    """Wall seconds and the process's CPU seconds (every thread) of one call. On a loaded
    machine the CPU seconds vary less: they leave out the time spent waiting for a core."""
    import jax

    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - wall, time.process_time() - cpu


def _device_peak_mb():
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


# ------------------------------------------------------------------------------------ workers


def ours_inference(args) -> dict:
    """Graph build, compile, steady one-step calls and an R-step scan of our implementation.

    ``step_s`` is one step given the prepared constants (the edge terms that depend only on
    parameters and graph, computed once per forecast: ``prepare_s``), which is what each step of
    a rollout costs. The rollout is timed end to end from unprepared constants, so ``rollout_s``
    includes one preparation.
    """
    import functools

    import jax
    import jax.numpy as jnp

    from graphcast_zero import data, rollout
    from graphcast_zero.graph_cache import assemble_predictor

    model, task, dataset, stats, params = example(args.config, args.rollout_steps)
    inputs, _, forcings = data.extract_inputs_targets_forcings(
        dataset, task, slice("6h", f"{6 * args.rollout_steps}h")
    )
    start = time.perf_counter()
    # No graph cache: the build is what graph_build_s measures.
    predictor, _ = assemble_predictor(
        model, task, stats, dataset.lat.values, dataset.lon.values, precision=args.precision,
        memory=memory_plan(args),
    )  # fmt: skip
    graph_s = time.perf_counter() - start
    params = jax.tree.map(jnp.asarray, params)
    constants = predictor.constants()
    prepare = jax.jit(predictor.prepare)
    prepared, prepare_first_s = _timed(prepare, params, constants)
    prepare_s = _timed(prepare, params, constants)[1]
    state = {n: jnp.asarray(v) for n, v in data.dataset_to_arrays(inputs).items()}
    forcing_arrays = data.dataset_to_arrays(forcings)
    one = {n: jnp.asarray(v[:, :1]) for n, v in forcing_arrays.items()}
    run = jax.jit(functools.partial(rollout.rollout_scan, predictor))
    start = time.perf_counter()
    step = run.lower(params, prepared, state, one).compile()
    compile_s = time.perf_counter() - start + max(prepare_first_s - prepare_s, 0.0)
    step_times = [
        _wall_and_cpu(step, params, prepared, state, one) for _ in range(args.step_repeats)
    ]
    del prepared
    every = {n: jnp.asarray(v) for n, v in forcing_arrays.items()}
    start = time.perf_counter()
    scan = run.lower(params, constants, state, every).compile()
    rollout_compile_s = time.perf_counter() - start
    rollout_s = _timed(scan, params, constants, state, every)[1]
    return dict(
        graph_build_s=graph_s,
        compile_s=compile_s,
        prepare_s=prepare_s,
        step_s=[wall for wall, _ in step_times],
        step_cpu_s=[cpu for _, cpu in step_times],
        rollout_compile_s=rollout_compile_s,
        rollout_s=rollout_s,
    )


def ours_training(args) -> dict:
    """Compile and steady time of our loss + gradients over ``--loss-steps`` steps."""
    import functools

    import jax
    import jax.numpy as jnp

    from graphcast_zero import data, loss
    from graphcast_zero.graph_cache import assemble_predictor

    model, task, dataset, stats, params = example(args.config, args.loss_steps)
    inputs, targets, forcings = data.extract_inputs_targets_forcings(
        dataset, task, slice("6h", f"{6 * args.loss_steps}h")
    )
    predictor, _ = assemble_predictor(
        model, task, stats, dataset.lat.values, dataset.lon.values, precision=args.precision,
        memory=memory_plan(args),
    )  # fmt: skip
    arrays = [
        {n: jnp.asarray(v) for n, v in data.dataset_to_arrays(d).items()}
        for d in (inputs, targets, forcings)
    ]
    grads = jax.jit(functools.partial(loss.loss_and_grads, predictor))
    operands = (jax.tree.map(jnp.asarray, params), predictor.constants(), *arrays)
    start = time.perf_counter()
    compiled = grads.lower(*operands).compile()
    compile_s = time.perf_counter() - start
    times = [_wall_and_cpu(compiled, *operands) for _ in range(args.step_repeats)]
    return dict(
        train_compile_s=compile_s,
        train_step_s=[wall for wall, _ in times],
        train_step_cpu_s=[cpu for _, cpu in times],
    )


def memory_plan(args):
    """Ours: the memory plan ``--grid-chunks`` and ``--remat`` ask for (nothing chosen)."""
    from graphcast_zero.memory import MemoryPlan

    return MemoryPlan(
        grid_chunks=args.grid_chunks,
        remat_processor=args.remat_processor,
        remat_steps=args.remat_steps,
    )


def _official_model(model, task, stats, precision):
    """The official demo's predictor stack, as haiku transforms (imports DeepMind's package)."""
    import haiku as hk
    from graphcast import autoregressive, casting, graphcast, normalization

    model_config = graphcast.ModelConfig(**dataclasses.asdict(model))
    task_config = graphcast.TaskConfig(**dataclasses.asdict(task))

    def construct():
        core = graphcast.GraphCast(model_config, task_config)
        core = casting.Bfloat16Cast(core, enabled=precision == "bfloat16")
        core = normalization.InputsAndResiduals(
            core,
            diffs_stddev_by_level=stats.diffs_stddev,
            mean_by_level=stats.mean,
            stddev_by_level=stats.stddev,
        )
        return autoregressive.Predictor(core, gradient_checkpointing=True)

    def graph_only(sample_inputs):
        graphcast.GraphCast(model_config, task_config)._maybe_init(sample_inputs)

    return construct, hk.transform(graph_only)


def official_inference(args) -> dict:
    """The official code's graph build, first call, steady calls and chunked rollout."""
    import haiku as hk
    import jax
    import numpy as np
    from graphcast import data_utils, rollout

    model, task, dataset, stats, params = example(args.config, args.rollout_steps)
    inputs, targets, forcings = data_utils.extract_inputs_targets_forcings(
        dataset,
        target_lead_times=slice("6h", f"{6 * args.rollout_steps}h"),
        **dataclasses.asdict(task),
    )
    construct, graph_only = _official_model(model, task, stats, args.precision)
    start = time.perf_counter()
    graph_only.apply(None, None, inputs)
    graph_s = time.perf_counter() - start

    forward = hk.transform_with_state(
        lambda inputs, targets_template, forcings: construct()(
            inputs, targets_template=targets_template, forcings=forcings
        )
    )
    apply = jax.jit(forward.apply)
    params = jax.tree.map(jax.numpy.asarray, params)
    rng = jax.random.PRNGKey(0)
    template = targets.isel(time=slice(0, 1)) * np.nan
    one = forcings.isel(time=slice(0, 1))
    first_s = _timed(lambda: apply(params, {}, rng, inputs, template, one)[0])[1]
    step_s = [
        _timed(lambda: apply(params, {}, rng, inputs, template, one)[0])[1]
        for _ in range(args.step_repeats)
    ]
    start = time.perf_counter()
    rollout.chunked_prediction(
        lambda **kw: apply(params, {}, **kw)[0],
        rng=rng,
        inputs=inputs,
        targets_template=targets * np.nan,
        forcings=forcings,
    ).load()
    rollout_s = time.perf_counter() - start
    return dict(
        graph_build_s=graph_s,
        # The first call also traces (building the graphs again) and runs one step.
        compile_s=max(first_s - min(step_s) - graph_s, 0.0),
        step_s=step_s,
        rollout_compile_s=0.0,  # the same one-step program is reused for every step
        rollout_s=rollout_s,
    )


def official_training(args) -> dict:
    """The official loss + gradients over ``--loss-steps`` steps (as the demo computes them)."""
    import haiku as hk
    import jax
    from graphcast import data_utils, xarray_jax

    model, task, dataset, stats, params = example(args.config, args.loss_steps)
    lead_times = slice("6h", f"{6 * args.loss_steps}h")
    inputs, targets, forcings = data_utils.extract_inputs_targets_forcings(
        dataset, target_lead_times=lead_times, **dataclasses.asdict(task)
    )
    construct, _ = _official_model(model, task, stats, args.precision)

    @hk.transform_with_state
    def loss_fn(inputs, targets, forcings):
        loss, _ = construct().loss(inputs, targets, forcings)
        return xarray_jax.unwrap_data(loss.mean(), require_jax=True)

    def objective(p, i, t, f):
        return loss_fn.apply(p, {}, jax.random.PRNGKey(0), i, t, f)[0]

    grads = jax.jit(jax.value_and_grad(objective))
    params = jax.tree.map(jax.numpy.asarray, params)
    first_s = _timed(grads, params, inputs, targets, forcings)[1]
    times = [_timed(grads, params, inputs, targets, forcings)[1] for _ in range(args.step_repeats)]
    return dict(train_compile_s=max(first_s - min(times), 0.0), train_step_s=times)


WORKERS = {
    ("ours", "inference"): ours_inference,
    ("ours", "training"): ours_training,
    ("official", "inference"): official_inference,
    ("official", "training"): official_training,
}


def run_worker(args) -> None:
    """Runs one measurement in this process and prints it as one JSON line."""
    result = WORKERS[(args.impl, args.phase)](args)
    result["peak_host_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_device_mb"] = _device_peak_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------- orchestration


def official_available() -> bool:
    """Whether DeepMind's ``graphcast`` package is importable here (never a dependency)."""
    try:
        from graphcast import graphcast  # noqa: F401
    except ImportError:
        return False
    return True


def plan_spec(text: str) -> tuple[int, int, bool]:
    """An argparse type for ``--plans``: ``CHUNKS:REMAT_PROCESSOR:REMAT_STEPS``, e.g. ``4:1:0``."""
    try:
        chunks, processor, steps = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not CHUNKS:REMAT_PROCESSOR:REMAT_STEPS"
        ) from None
    return chunks, processor, bool(steps)


def _plan_flags(plan: tuple[int, int, bool]) -> list[str]:
    chunks, processor, steps = plan
    return ["--grid-chunks", str(chunks), "--remat-processor", str(processor)] + (
        ["--remat-steps"] if steps else []
    )


def spawn(args, impl: str, phase: str, precision: str) -> dict:
    """Runs one worker in a fresh interpreter and returns its measurements.

    ``impl``: ``official``, ``ours`` (the plan of ``--grid-chunks``/``--remat-*``) or
    ``ours C:P:S`` (a plan of ``--plans``).
    """
    name, _, spec = impl.partition(" ")
    plan = plan_spec(spec) if spec else (args.grid_chunks, args.remat_processor, args.remat_steps)
    command = [
        sys.executable, __file__, "--worker", "--impl", name, "--phases", phase,
        "--precision", precision, "--config", args.config,
        "--rollout-steps", str(args.rollout_steps), "--step-repeats", str(args.step_repeats),
        "--loss-steps", str(args.loss_steps), *_plan_flags(plan),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{impl} {phase} {precision} worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(impl=impl, phase=phase, precision=precision, load_average=os.getloadavg())
    result["wall_s"] = time.perf_counter() - started
    return result


def device_info() -> dict:
    import jax

    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") if os.path.exists("/proc/cpuinfo") else open(os.devnull) as f:
        names = re.findall(r"model name\s*:\s*(.*)", f.read())
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_model": names[0].strip() if names else cpu,
        "cpu_count": os.cpu_count(),
    }


def device_label(info: dict) -> str:
    if info["platform"] == "cpu":
        label = f"cpu-{info['cpu_model']}-{info['cpu_count']}cores"
    else:
        label = f"{info['platform']}-{info['device_kind']}"
    return re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")


def versions() -> dict:
    from importlib import metadata

    result = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "dm-haiku", "numpy", "graphcast-zero", "graphcast"):
        try:
            result[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            result[package] = None
    return result


def summarize(runs: list[dict], rollout_steps: int) -> dict:
    """Per implementation and precision: medians of the times, maxima of the memory peaks."""
    samples: dict = {}
    for run in runs:
        entry = samples.setdefault(run["impl"], {}).setdefault(run["precision"], {})
        for key, value in run.items():
            if key in ("impl", "phase", "precision", "load_average", "wall_s") or value is None:
                continue
            if key.startswith("peak_"):
                key = f"{run['phase']}_{key}"
            entry.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    table: dict = {}
    for impl, by_precision in samples.items():
        for precision, entry in by_precision.items():
            row = {
                key: max(values) if key.endswith("_mb") else pystats.median(values)
                for key, values in entry.items()
            }
            if "rollout_s" in row:
                row["rollout_steps_per_s"] = rollout_steps / row["rollout_s"]
                # Ours (any --plans plan too) compiles the scan once; the official reuses its
                # one-step program.
                ours = impl.partition(" ")[0] == "ours"
                compile_s = row["rollout_compile_s"] if ours else row["compile_s"]
                # Ours prepares the step-independent terms once per rollout, not per step.
                once = row.get("prepare_s", 0.0)
                per_step = (row["rollout_s"] - once) / rollout_steps
                row[f"rollout_{ROLLOUT_TARGET_STEPS}_steps_s_estimated"] = (
                    compile_s + once + ROLLOUT_TARGET_STEPS * per_step
                )
            table.setdefault(impl, {})[precision] = row
    return table


def ratios(table: dict) -> dict:
    """official / ours for times (above 1: we are faster), ours / official for memory."""
    if "official" not in table:
        return {}
    result = {}
    for precision, ours in table.get("ours", {}).items():
        theirs = table["official"].get(precision)
        if not theirs:
            continue
        result[precision] = {
            key: theirs[key] / ours[key]
            for key in ("step_s", "compile_s", "train_step_s", "graph_build_s")
            if ours.get(key) and theirs.get(key)
        }
        result[precision]["rollout_steps_per_s_ours_over_official"] = ours.get(
            "rollout_steps_per_s", 0
        ) / theirs.get("rollout_steps_per_s", float("nan"))
        for key in ("inference_peak_host_mb", "training_peak_host_mb"):
            if ours.get(key) and theirs.get(key):
                result[precision][f"{key}_ours_over_official"] = ours[key] / theirs[key]
    return result


COLUMNS = [
    ("graph_build_s", "graph s"),
    ("compile_s", "compile s"),
    ("prepare_s", "prepare s"),
    ("step_s", "s/step"),
    ("rollout_steps_per_s", "steps/s"),
    (f"rollout_{ROLLOUT_TARGET_STEPS}_steps_s_estimated", "40 steps s"),
    ("train_step_s", "train s"),
    ("inference_peak_host_mb", "infer MB"),
    ("training_peak_host_mb", "train MB"),
]


def print_table(report: dict) -> None:
    header = f"{'impl':9s} {'precision':9s} " + " ".join(f"{t:>10s}" for _, t in COLUMNS)
    print(header)
    for impl, by_precision in report["summary"].items():
        for precision, row in by_precision.items():
            cells = " ".join(
                f"{row[key]:10.3g}" if row.get(key) is not None else f"{'-':>10s}"
                for key, _ in COLUMNS
            )
            print(f"{impl:9s} {precision:9s} {cells}")
    for precision, ratio in report["ratios"].items():
        text = ", ".join(f"{k}={v:.2f}" for k, v in ratio.items())
        print(f"official/ours ({precision}): {text}")
    print(
        f"load average: start {report['load_average']['start']}, end {report['load_average']['end']}"
    )


def orchestrate(args) -> dict:
    from graphcast_zero.atomic import write_json

    compare = official_available() if args.compare is None else args.compare
    if compare and not official_available():
        raise SystemExit("--compare needs DeepMind's graphcast importable in this Python")
    ours = [f"ours {c}:{p}:{int(s)}" for c, p, s in args.plans] if args.plans else ["ours"]
    impls = ours + (["official"] if compare else [])
    load_start = os.getloadavg()
    info = device_info()
    model, task, resolution = configs(args.config)
    report = {
        "format": "graphcast-zero-benchmark/1",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": info,
        "versions": versions(),
        "configuration": {
            "name": args.config,
            "model": dataclasses.asdict(model),
            "pressure_levels": len(task.pressure_levels),
            "grid_resolution_deg": resolution,
            "grid_shape": [int(round(180 / resolution)) + 1, int(round(360 / resolution))],
            "batch": 1,
            "precisions": args.precision,
            "rollout_steps_measured": args.rollout_steps,
            "step_repeats": args.step_repeats,
            "repeats": args.repeats,
            "phases": args.phases,
            "loss_steps": args.loss_steps,
            "memory_plan_ours": (
                [f"{c}:{p}:{int(s)}" for c, p, s in args.plans]
                if args.plans
                else dataclasses.asdict(memory_plan(args))
            ),
            "inputs": "synthetic.make_example_dataset(seed=0), tests/data/real-stats, init_params(seed=0)",
        },
        "load_average": {"start": load_start, "end": None},
        "runs": [],
    }
    output = Path(args.output or HERE / "results" / f"{device_label(info)}-{args.config}.json")
    for phase in args.phases:
        for precision in args.precision:
            for _ in range(args.repeats):
                for impl in impls:  # alternate, so both see similar load
                    report["runs"].append(spawn(args, impl, phase, precision))
                    report["load_average"]["end"] = os.getloadavg()
                    report["summary"] = summarize(report["runs"], args.rollout_steps)
                    report["ratios"] = ratios(report["summary"])
                    write_json(report, output)  # atomic: a stopped run leaves the last whole file
    print_table(report)
    print(f"wrote {output}")
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--precision", nargs="+", choices=["float32", "bfloat16"],
                        default=["float32", "bfloat16"])  # fmt: skip
    parser.add_argument("--phases", nargs="+", choices=["inference", "training"],
                        default=["inference", "training"])  # fmt: skip
    parser.add_argument("--rollout-steps", type=int, default=4,
                        help="steps of the measured rollout (40 is extrapolated from it)")  # fmt: skip
    parser.add_argument("--step-repeats", type=int, default=2, help="timed calls per worker")
    parser.add_argument("--repeats", type=int, default=1, help="workers per implementation")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=None,
                        help="run DeepMind's graphcast too (default: when importable)")  # fmt: skip
    parser.add_argument(
        "--output", help="JSON path (default: benchmarks/results/<device>-<config>.json)"
    )
    parser.add_argument("--grid-chunks", type=int, default=1,
                        help="ours: encoder and decoder in this many chunks of grid nodes")  # fmt: skip
    parser.add_argument("--remat-processor", type=int, default=0,
                        help="ours: processor remat (0 off, 1 each step, N>1 nested groups of N)")  # fmt: skip
    parser.add_argument("--remat-steps", action="store_true",
                        help="ours: multi-step losses keep one output per step (trajectory)")  # fmt: skip
    parser.add_argument("--loss-steps", type=int, default=1,
                        help="autoregressive steps in the timed training loss")  # fmt: skip
    parser.add_argument("--plans", type=plan_spec, nargs="+",
                        help="ours: several memory plans CHUNKS:REMAT_PROCESSOR:REMAT_STEPS, "
                        "their workers alternating like the implementations'")  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=["ours", "official"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        args.precision = args.precision[0]
        args.phase = args.phases[0]
        run_worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
