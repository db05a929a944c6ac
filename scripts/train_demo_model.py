"""Trains the SYNTHETIC demo model that ships with the package, deterministically.

    JAX_PLATFORMS=cpu .venv/bin/python scripts/train_demo_model.py

writes ``src/graphcast_zero/weights/demo_synthetic_trained.{npz,json}``: the checkpoint in the
official format and its record (recipe, the loss of every iteration, time taken, skill against
persistence on the demo data). About 7 minutes on two CPU cores. The recipe is
``graphcast_zero.demo_model.RECIPE``; see docs/demo.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from graphcast_zero import demo_model, evaluation, validation
from graphcast_zero.errors import GraphCastZeroError
from graphcast_zero.workflow.run_info import environment_info

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src" / "graphcast_zero" / "weights"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"folder for {demo_model.WEIGHTS_FILE} and {demo_model.RECORD_FILE} "
        "(default: the package's weights folder)",
    )
    options = parser.parse_args(argv)
    try:  # before minutes of training, not after
        validation.check_writable_folder(options.output_dir)
    except GraphCastZeroError:
        parser.error(f"--output-dir {options.output_dir} is not a writable folder: choose another")
    try:
        train_and_write(options.output_dir)
    except GraphCastZeroError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def train_and_write(output_dir: Path) -> None:
    """Trains with the recipe, scores the result on the demo data and writes both files."""
    recipe = demo_model.RECIPE
    bar = tqdm(total=recipe.iterations, desc="training", unit="it")

    def report(iteration: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    started = time.perf_counter()
    try:
        model = demo_model.train_demo_model(recipe, on_iteration=report)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    scores = demo_model.demo_scores(model.checkpoint)
    record = demo_model.training_record(model, recipe, scores, seconds)
    record.update(environment_info())
    written = demo_model.write_trained_model(model, record, output_dir)
    final = sum(model.losses[-100:]) / len(model.losses[-100:])
    print(f"Trained {recipe.iterations} iterations in {seconds:.0f} s; final loss (mean of the "
          f"last 100) {final:.4g}")  # fmt: skip
    for hours, skills in record["skill_vs_persistence"].items():
        print(evaluation.persistence_verdict(skills, int(hours.removesuffix("h"))))
    print("\n".join(f"  {path}" for path in written))


if __name__ == "__main__":
    sys.exit(main())
