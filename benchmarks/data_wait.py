"""How long streamed training waits for data: ``run-training --source era5`` with and without
read-ahead, on a synthetic ERA5 store.

Writes a store in ARCO-ERA5's layout (hourly, 37 levels, one chunk per hour and variable) with the
project's generator, then trains a random model on its windows twice: ``--prefetch 0`` (each
batch read when the step asks for it) and ``--prefetch N`` (grain's reader threads fill a buffer
while the step computes). The fraction of the loop's time spent waiting for batches is what
``training.json`` and the console report; the figures without each run's first iteration (which
compiles) are the steady state. Results go to ``results/<device>-data-wait.json``.

    .venv/bin/python benchmarks/data_wait.py
    .venv/bin/python benchmarks/data_wait.py --store gs://bucket/era5.zarr --endpoint URL
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import benchmark  # noqa: E402  (the device description and its file-name label)

STATS = REPO / "tests" / "data" / "official-small" / "stats"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="an ERA5 store to read instead of a generated one")
    parser.add_argument("--endpoint", help="GCS-compatible server for a gs:// --store")
    parser.add_argument("--init-start", default="2022-01-01T06")
    parser.add_argument("--init-end", default="2022-01-02T06")
    parser.add_argument("--resolution", type=float, default=4.0)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--steps", type=int, default=1, help="the loss's steps per window")
    parser.add_argument("--prefetch", type=int, default=4, help="batches read ahead")
    parser.add_argument("--latent-size", type=int, default=32)
    parser.add_argument("--mesh-size", type=int, default=4)
    parser.add_argument("--output", type=Path)
    return parser.parse_args(argv)


def generated_store(folder: Path) -> str:
    from graphcast_zero import synthetic
    from graphcast_zero.sources.layouts import ARCO

    started = time.perf_counter()
    path = synthetic.write_era5_store(
        folder / "arco.zarr", ARCO, start="2021-12-31T18", hours=48, resolution=4.0
    )
    print(f"wrote a synthetic ARCO-layout store in {time.perf_counter() - started:.0f} s: {path}")
    return str(path)


def run(args, store: str, prefetch: int, root: Path) -> dict:
    from graphcast_zero import workflow
    from graphcast_zero.paths import DataPaths

    paths = DataPaths(root / f"data-prefetch-{prefetch}")
    shutil.copytree(STATS, paths.root / "stats")
    model = workflow.RandomModel(mesh_size=args.mesh_size, latent_size=args.latent_size)
    era5 = workflow.Era5Training(
        init_start=args.init_start, init_end=args.init_end, store=store,
        endpoint=args.endpoint, resolution=args.resolution,
    )  # fmt: skip
    started = time.perf_counter()
    result = workflow.run_training(
        paths, random=True, random_model=model, era5=era5, steps=args.steps,
        iterations=args.iterations, precision="float32",
        cadence=workflow.Cadence(prefetch=prefetch), progress=False,
    )  # fmt: skip
    wait = result.data_wait
    return {
        "prefetch": prefetch,
        "wall_s": round(time.perf_counter() - started, 2),
        **wait.record(),
        "steady_wait_s": round(wait.steady_wait_s, 4),
        "steady_step_s": round(wait.steady_step_s, 4),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = args.store or generated_store(root)
        runs = [run(args, store, prefetch, root) for prefetch in (0, args.prefetch)]
    from graphcast_zero.atomic import write_json

    info = benchmark.device_info()
    report = {
        "benchmark": "streamed training: fraction of the loop's time waiting for data",
        "device": info,
        "load_average": list(os.getloadavg()),
        "store": args.store or "synthetic ARCO layout, 4°, 37 levels (generated)",
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "store")},
        "runs": runs,
    }
    label = benchmark.device_label(info)
    output = args.output or REPO / "benchmarks" / "results" / f"{label}-data-wait.json"
    write_json(report, output)
    for entry in runs:
        print(f"prefetch {entry['prefetch']}: waited {100 * entry['fraction']:.1f}% of the loop "
              f"({100 * entry['fraction_without_compiling']:.1f}% without compiling)")  # fmt: skip
    print(f"wrote {output}")
    return report


if __name__ == "__main__":
    main()
