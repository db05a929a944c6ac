"""XLA's count of the floating-point operations and bytes of one 6-hour step, per configuration.

A step's cost on a device that runs at a steady FLOP rate scales with this count, so a time
measured for one configuration (``benchmark.py``) gives an estimate for another that was not run
there: the 0.25° models on a small CPU, where one step needs more memory than such a machine
has. The count is XLA's cost analysis of the lowered rollout program of one step (batch 1,
float32, prepared edge terms as on a CPU) — nothing is compiled, allocated or run; the graphs and
parameters are built, so the 0.25° configurations take about 4 GB (operational) and 11 GB
(full) of host memory.

Usage (from the repository root)::

    JAX_PLATFORMS=cpu python benchmarks/flops.py small operational

Writes ``benchmarks/results/flops-per-step.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmark  # noqa: E402  (the configurations and versions)
import memory_fit  # noqa: E402  (the programs, from abstract shapes)


def count(config: str) -> dict:
    """FLOPs and bytes accessed of one step of ``config``, as XLA counts them."""
    started = time.perf_counter()
    from graphcast_zero.memory import DEFAULT_PLAN

    candidates = memory_fit.Candidates(config, "float32")
    program = candidates.program("inference", DEFAULT_PLAN)
    lowered = program.lower(*candidates.operands("inference", 1, 1, DEFAULT_PLAN))
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older JAX returns one per program
    return {
        "flops_per_step": float(cost["flops"]),
        "bytes_accessed_per_step": float(cost.get("bytes accessed", 0.0)),
        "seconds_to_count": time.perf_counter() - started,
    }


def main(argv=None) -> dict:
    from graphcast_zero.atomic import write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", choices=sorted(benchmark.CONFIGS))
    parser.add_argument("--output", type=Path, default=HERE / "results" / "flops-per-step.json")
    args = parser.parse_args(argv)
    report = {
        "format": "graphcast-zero-flops/1",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": benchmark.versions(),
        "method": "XLA cost analysis of the lowered one-step rollout program, batch 1, float32",
        "configurations": {},
    }
    for config in args.configs:
        model, task, resolution = benchmark.configs(config)
        report["configurations"][config] = {
            "grid_resolution_deg": resolution,
            "pressure_levels": len(task.pressure_levels),
            "mesh_size": model.mesh_size,
            **count(config),
        }
    write_json(report, args.output)
    for config, row in report["configurations"].items():
        print(f"{config:<12} {row['flops_per_step']:.3e} FLOP  "
              f"{row['bytes_accessed_per_step']:.3e} B per step")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
