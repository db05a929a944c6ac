"""The demo task: the whole path offline on the generated demo bundle."""

from __future__ import annotations

import time

from graphcast_zero import evaluation
from graphcast_zero.config import DEMO_MODEL
from graphcast_zero.paths import DataPaths
from graphcast_zero.workflow.inference import run_inference
from graphcast_zero.workflow.options import Log
from graphcast_zero.workflow.scoring import MAP_VARIABLE
from graphcast_zero.workflow.train import run_training


def run_demo(paths: DataPaths, iterations: int = 5, log: Log = print) -> dict:
    """The whole path offline on the generated demo bundle: forecast, scores, pictures, training.

    Returns:
      ``{"inference": InferenceResult, "training": TrainingResult, "seconds": float}``.
    """
    from graphcast_zero import synthetic

    started = time.perf_counter()
    synthetic.write_demo_bundle(paths, log=log)
    dataset = paths.dataset / synthetic.dataset_file_name(
        synthetic.DEMO_RESOLUTION, 13, synthetic.DEMO_STEPS
    )
    params = paths.params / DEMO_MODEL.file_name
    forecast = run_inference(paths, params=params, dataset=dataset, log=log)
    log(evaluation.format_metrics_table(
        evaluation.metrics_table(forecast.metrics, variables=[MAP_VARIABLE])
    ))  # fmt: skip
    trained = run_training(paths, params=params, dataset=dataset, iterations=iterations, log=log)
    seconds = time.perf_counter() - started
    log(f"Demo finished in {seconds:.0f} s. Forecast, metrics and pictures: {forecast.run_dir}; "
        f"trained checkpoint: {trained.checkpoint_path}")  # fmt: skip
    return {"inference": forecast, "training": trained, "seconds": seconds}
