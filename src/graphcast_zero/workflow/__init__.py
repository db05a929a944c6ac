"""The forecast workflow behind the invoke tasks: pick files, check them, forecast, score, draw.

Each ``run_*`` function is what one task does. They choose defaults from the data folder, check
that the checkpoint, statistics and dataset fit each other before anything compiles
(:mod:`graphcast_zero.validation`), and write results into ``<data>/outputs/<run>/``. A run
folder is built under a hidden temporary name and renamed when complete, so a failed run leaves
nothing half-written. The training loop itself lives in :mod:`graphcast_zero.trainer`.

Submodules, by concern:

- :mod:`~graphcast_zero.workflow.files`: choosing and loading inputs, run folders, writers.
- :mod:`~graphcast_zero.workflow.inference`: ``run_inference``.
- :mod:`~graphcast_zero.workflow.scoring`: ``score_run``, ``run_evaluate``, ``run_plot``, pictures.
- :mod:`~graphcast_zero.workflow.training_run`: ``run_training``, ``random_checkpoint``.
- :mod:`~graphcast_zero.workflow.demo_run`: ``run_demo``.

Everything is re-exported here, so ``from graphcast_zero import workflow; workflow.run_inference``
works. To replace a helper in a test, patch the submodule that calls it (for example
``workflow.inference.write_pictures``), since each submodule looks names up in its own namespace.
"""

from graphcast_zero.workflow.demo_run import run_demo
from graphcast_zero.workflow.files import (
    PACKAGES,
    PREDICTIONS,
    RUN_INFO,
    Log,
    PathLike,
    Setup,
    choose_dataset,
    choose_params,
    default_run_name,
    environment_info,
    forecast_window,
    load_setup,
    newest_file,
    newest_run,
    staged_folder,
    use_compilation_cache,
    write_json,
    write_netcdf,
)
from graphcast_zero.workflow.inference import InferenceResult, run_inference
from graphcast_zero.workflow.scoring import (
    CHART_LEVEL,
    MAP_VARIABLE,
    ScoredRun,
    default_level,
    locate_predictions,
    parse_lead_time,
    run_evaluate,
    run_plot,
    score_run,
    write_pictures,
)
from graphcast_zero.workflow.training_run import (
    OPTIMIZER_STATE,
    TRAINED,
    TrainingResult,
    random_checkpoint,
    run_training,
)

__all__ = [
    "CHART_LEVEL",
    "MAP_VARIABLE",
    "OPTIMIZER_STATE",
    "PACKAGES",
    "PREDICTIONS",
    "RUN_INFO",
    "TRAINED",
    "InferenceResult",
    "Log",
    "PathLike",
    "ScoredRun",
    "Setup",
    "TrainingResult",
    "choose_dataset",
    "choose_params",
    "default_level",
    "default_run_name",
    "environment_info",
    "forecast_window",
    "load_setup",
    "locate_predictions",
    "newest_file",
    "newest_run",
    "parse_lead_time",
    "random_checkpoint",
    "run_demo",
    "run_evaluate",
    "run_inference",
    "run_plot",
    "run_training",
    "score_run",
    "staged_folder",
    "use_compilation_cache",
    "write_json",
    "write_netcdf",
    "write_pictures",
]
