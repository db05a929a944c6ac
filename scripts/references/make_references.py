"""Regenerates the reference fixtures of tests/data/ with DeepMind's graphcast, or compares them.

Generating needs DeepMind's ``graphcast`` package (commit 08cf736) in its own environment; the
environment and the runtime are described in tests/data/README.md. From the repository root::

    PYTHONPATH=src /path/to/official-env/bin/python scripts/references/make_references.py \\
        --output /tmp/references [--only mesh4]
    .venv/bin/python scripts/references/make_references.py --compare /tmp/references

``--compare`` needs only numpy and xarray. It checks the regenerated files against the committed
ones (``--against``, tests/data/ by default) and exits non-zero when one differs beyond its
tolerance or in structure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from configurations import CONFIGURATIONS, SOURCE_BATCH, STATS_FILES, STATS_FOLDERS, select

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "tests" / "data"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Regenerate tests/data/official-small and official-extra/* with DeepMind's "
        "graphcast package, or compare a regenerated folder with the committed one."
    )
    parser.add_argument(
        "--output", type=Path, help="folder to write the regenerated references into"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="compare the references regenerated in DIR with the committed ones",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"only this configuration (repeatable): {', '.join(CONFIGURATIONS)}",
    )
    parser.add_argument(
        "--inputs",
        type=Path,
        default=COMMITTED,
        help="where the source batch and statistics are read (default: tests/data)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=COMMITTED,
        help="the committed references --compare checks against (default: tests/data)",
    )
    args = parser.parse_args(argv)
    if args.output is None and args.compare is None:
        parser.error("give --output DIR to regenerate, --compare DIR to compare, or both")
    for option, folder in (("--inputs", args.inputs), ("--against", args.against)):
        if not folder.is_dir():
            parser.error(f"{option} {folder}: no such folder")
    if args.compare and not args.output and not args.compare.is_dir():
        parser.error(f"--compare {args.compare}: no such folder; regenerate into it with --output")
    if args.output and args.output.resolve() == args.inputs.resolve():
        parser.error(
            f"--output {args.output} is the inputs folder: regenerate elsewhere, --compare, "
            "then copy the files you mean to replace"
        )
    return args


def regenerate(configurations, inputs: Path, output: Path) -> None:
    """Runs each configuration in turn (one at a time: each uses every core while it runs)."""
    try:
        from generate import generate
    except ImportError as error:
        raise SystemExit(
            f"cannot regenerate: {error}. Run with DeepMind's graphcast installed and "
            "PYTHONPATH=src (tests/data/README.md describes the environment)"
        ) from None
    needed = [
        SOURCE_BATCH,
        *(f"{f}/{name}" for f in STATS_FOLDERS.values() for name in STATS_FILES),
    ]
    missing = [name for name in needed if not (inputs / name).is_file()]
    if missing:
        raise SystemExit(
            f"--inputs {inputs}: {missing[0]} is missing; point --inputs at tests/data"
        )
    for configuration in configurations:
        started = time.perf_counter()
        timings = generate(configuration, inputs, output)
        print(
            f"{configuration.name}: wrote {output / configuration.folder} in "
            f"{time.perf_counter() - started:.0f} s ({timings})",
            flush=True,
        )


def compare(configurations, ours: Path, committed: Path) -> bool:
    """Prints the comparison table; True when every file matches."""
    from compare import compare_configuration, report

    results = []
    for configuration in configurations:
        results += compare_configuration(configuration, ours, committed)
    table, ok = report(results)
    print(table)
    print("all files match" if ok else "some files differ: see FAIL lines")
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    configurations = select(args.only)
    if args.output:
        regenerate(configurations, args.inputs, args.output)
    if args.compare and not compare(configurations, args.compare, args.against):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
