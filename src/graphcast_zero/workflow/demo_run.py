"""The demo task: the whole path offline on the generated demo bundle."""

from __future__ import annotations

import time

from graphcast_zero import evaluation
from graphcast_zero.config import DEMO_MODEL
from graphcast_zero.paths import DataPaths
from graphcast_zero.workflow.inference import run_inference
from graphcast_zero.workflow.options import Log
from graphcast_zero.workflow.train import run_training

# Lead times (hours) of the printed table; the verdict is given at the first.
TABLE_LEAD_HOURS = (24, 48)


def run_demo(paths: DataPaths, iterations: int = 5, log: Log = print) -> dict:
    """The whole path offline on the generated demo bundle: forecast, scores, pictures, training.

    The bundle's model is the SYNTHETIC one trained on the generator's fields
    (:mod:`graphcast_zero.demo_model`): the scores table shows its skill against persistence,
    and the training iterations continue from it at the rate its training ended with.

    Returns:
      ``{"inference": InferenceResult, "training": TrainingResult, "seconds": float,
      "skill_vs_persistence": {variable: skill at 24 h}}``.
    """
    from graphcast_zero import demo_model, synthetic

    started = time.perf_counter()
    synthetic.write_demo_bundle(paths, log=log)
    dataset = paths.dataset / synthetic.dataset_file_name(
        synthetic.DEMO_RESOLUTION, 13, synthetic.DEMO_STEPS
    )
    params = paths.params / DEMO_MODEL.file_name
    forecast = run_inference(paths, params=params, dataset=dataset, log=log)
    rows = evaluation.metrics_table(forecast.metrics, levels=[evaluation.HEADLINE_LEVEL])
    log(evaluation.format_metrics_table(
        [row for row in rows if row["lead_time_hours"] in TABLE_LEAD_HOURS]
    ))  # fmt: skip
    skills = evaluation.skill_vs_persistence(forecast.metrics, TABLE_LEAD_HOURS[0])
    log(evaluation.persistence_verdict(skills, TABLE_LEAD_HOURS[0]))
    trained = run_training(
        paths,
        params=params,
        dataset=dataset,
        iterations=iterations,
        learning_rate=demo_model.RECIPE.final_learning_rate,
        log=log,
    )
    seconds = time.perf_counter() - started
    log(f"Demo finished in {seconds:.0f} s. Forecast, metrics and pictures: {forecast.run_dir}; "
        f"trained checkpoint: {trained.checkpoint_path}")  # fmt: skip
    return {
        "inference": forecast,
        "training": trained,
        "seconds": seconds,
        "skill_vs_persistence": skills,
    }
