"""Hindcast throughput: initialisations forecast per hour by `invoke hindcast`, per worker count.

Each run is a whole campaign as ``run_hindcast`` runs it, on a fresh local Dask cluster of N
worker processes: the SYNTHETIC demo model (``config.DEMO_MODEL``, 4° grid, the weights that ship
with the package) forecasts every initialisation of the range from a SYNTHETIC ERA5 store in
WeatherBench2's layout (6-hourly, 13 levels; written locally by ``synthetic.write_era5_store``),
scores it against the truth, a computed climatology and persistence, and writes it into a new
store. Recorded per run:

- ``wall_s``: the whole campaign, cluster start, climatology and compiling included;
- ``first_forecast_s``: until the first forecast was written (start-up and one compile);
- ``steady_inits_per_hour``: between the N-th and the last forecast written (every worker
  compiled by then), the rate a long campaign runs at;
- ``inits_per_hour``: initialisations over ``wall_s``;
- ``mean_forecast_s``: a worker's time per initialisation (forecast, scores, writes);
- the load average before and after (the machine may be shared).

``--repeats R`` runs R rounds over the worker counts, alternating them, and records the medians.

Usage (from the repository root)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/hindcast_throughput.py           # 1 and 2 workers
    .venv/bin/python benchmarks/hindcast_throughput.py --workers 1 --inits 16 --steps 40

Writes ``benchmarks/results/<device>-hindcast.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmark  # noqa: E402  (the device description and versions)

FORMAT = "graphcast-zero-hindcast-benchmark/1"
FIRST_INIT = pd.Timestamp("2022-01-01T06")


def write_inputs(folder: Path, inits: int, every: str, steps: int):
    """A data folder with the demo model and its statistics, and a WeatherBench2-layout store that
    covers every window; returns (paths, store, last initialisation)."""
    from graphcast_zero import synthetic
    from graphcast_zero.paths import DataPaths
    from graphcast_zero.sources.layouts import WEATHERBENCH2

    paths = DataPaths(folder / "data")
    synthetic.write_demo_bundle(paths)
    last = FIRST_INIT + (inits - 1) * pd.Timedelta(every)
    start = FIRST_INIT - pd.Timedelta(hours=6)
    hours = int((last + steps * pd.Timedelta(hours=6) - start) / pd.Timedelta(hours=1)) + 1
    store = synthetic.write_era5_store(
        folder / "wb2.zarr", WEATHERBENCH2, start=f"{start:%Y-%m-%dT%H}", hours=hours,
        resolution=synthetic.DEMO_RESOLUTION,
    )  # fmt: skip
    return paths, store, last


def one_campaign(paths, store, last, args, workers: int, output: Path) -> dict:
    """Runs one campaign on a fresh local cluster of ``workers`` workers; returns its figures."""
    from graphcast_zero.hindcast import HindcastOptions, run_hindcast
    from graphcast_zero.synthetic import DEMO_RESOLUTION

    finished = []
    options = HindcastOptions(
        init_start=f"{FIRST_INIT:%Y-%m-%dT%H}", init_end=f"{last:%Y-%m-%dT%H}", every=args.every,
        steps=args.steps, store=str(store), output=str(output), workers=workers,
        resolution=DEMO_RESOLUTION,
    )  # fmt: skip
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = run_hindcast(
        paths, options, log=lambda _: None, progress=False,
        on_result=lambda _: finished.append(time.perf_counter() - started),
    )  # fmt: skip
    wall = time.perf_counter() - started
    count = len(result.results)
    steady = None
    if count > workers and finished[-1] > finished[workers - 1]:
        steady = (count - workers) * 3600.0 / (finished[-1] - finished[workers - 1])
    return {
        "workers": workers,
        "inits": count,
        "wall_s": wall,
        "first_forecast_s": finished[0],
        "steady_inits_per_hour": steady,
        "inits_per_hour": count * 3600.0 / wall,
        "mean_forecast_s": sum(r.seconds for r in result.results) / count,
        "devices": sorted({r.device for r in result.results}),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--inits", type=int, default=8, help="initialisations per campaign")
    parser.add_argument("--every", default="12h", help="time between initialisations")
    parser.add_argument("--steps", type=int, default=40, help="6-hour steps per forecast")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds over the worker counts, alternating"
    )
    parser.add_argument("--output", type=Path, help="JSON file (default: results/<device>-…)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hindcast-benchmark-") as scratch:
        paths, store, last = write_inputs(Path(scratch), args.inits, args.every, args.steps)
        # Rounds alternate the worker counts, so each sees the machine's load in turn.
        for round_ in range(args.repeats):
            for workers in args.workers:
                output = Path(scratch) / f"{round_}-{workers}-workers.zarr"
                runs.append(one_campaign(paths, store, last, args, workers, output))
                print(_row(runs[-1]), flush=True)
    info = benchmark.device_info()  # after the runs: JAX starts here only now
    from graphcast_zero.hindcast.engine import THREADS_PER_WORKER
    from graphcast_zero.synthetic import DEMO_RESOLUTION

    report = {
        "format": FORMAT,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": info,
        "versions": benchmark.versions(),
        "configuration": {
            "model": "demo (config.DEMO_MODEL, the shipped SYNTHETIC weights)",
            "grid_resolution_deg": DEMO_RESOLUTION,
            "pressure_levels": 13,
            "steps": args.steps,
            "inits": args.inits,
            "every": args.every,
            "source": "SYNTHETIC store in WeatherBench2's layout, local Zarr",
            "threads_per_worker": THREADS_PER_WORKER,
        },  # fmt: skip
        "runs": runs,
        "medians": medians(runs),
    }
    output = args.output or HERE / "results" / f"{benchmark.device_label(info)}-hindcast.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"written {output}")
    return report


def medians(runs: list[dict]) -> dict:
    """Per worker count, the median of each rate and time over the rounds."""
    fields = ("steady_inits_per_hour", "inits_per_hour", "wall_s", "mean_forecast_s")
    table = {}
    for workers in sorted({run["workers"] for run in runs}):
        mine = [run for run in runs if run["workers"] == workers]
        table[str(workers)] = {
            field: statistics.median(r[field] for r in mine if r[field] is not None)
            for field in fields
        }
    return table


def _row(run: dict) -> str:
    steady = run["steady_inits_per_hour"]
    return (
        f"{run['workers']} workers: {run['inits']} inits in {run['wall_s']:.0f} s "
        f"({run['inits_per_hour']:.0f}/h overall, "
        f"{'-' if steady is None else f'{steady:.0f}'}/h steady), "
        f"{run['mean_forecast_s']:.1f} s per forecast in a worker, first after "
        f"{run['first_forecast_s']:.0f} s; load {run['load_average']['before'][0]:.1f}"
    )


if __name__ == "__main__":
    main()
