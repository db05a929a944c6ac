"""The forecast workflow behind the invoke tasks: pick files, check them, forecast, score, draw.

Each ``run_*`` function is what one task does. They choose defaults from the data folder, check
that the checkpoint, statistics and dataset fit each other before anything compiles
(:mod:`graphcast_zero.validation`), and write results into ``<data>/outputs/<run>/``. A run
folder is built under a hidden temporary name and renamed when complete, so a failed run leaves
nothing half-written. The training loop itself lives in :mod:`graphcast_zero.train_loop`.

Submodules, by concern:

- :mod:`~graphcast_zero.workflow.choosing`: the newest fitting checkpoint, dataset or run.
- :mod:`~graphcast_zero.workflow.inputs`: loading the three inputs and checking they fit.
- :mod:`~graphcast_zero.workflow.options`: checked option values (precision, numbers, the
  ``--random`` architecture).
- :mod:`~graphcast_zero.workflow.compile_cache`: JAX's compilation cache in the data folder.
- :mod:`~graphcast_zero.workflow.run_folder`: run folder names and staged writing.
- :mod:`~graphcast_zero.workflow.run_info`: package versions and devices for the run records.
- :mod:`~graphcast_zero.workflow.inference`: ``run_inference``.
- :mod:`~graphcast_zero.workflow.scoring`: ``score_run``, ``run_evaluate``, ``run_plot``, pictures.
- :mod:`~graphcast_zero.workflow.train`: ``run_training`` in four phases, with
  :mod:`~graphcast_zero.workflow.train_data` (a dataset file's or an ERA5 store's windows),
  :mod:`~graphcast_zero.workflow.train_plan` (curriculum, learning rate, resuming a plan),
  :mod:`~graphcast_zero.workflow.train_session` (the loop's hook: progress, validation,
  checkpoints) and :mod:`~graphcast_zero.workflow.train_records` (the files a run writes).
- :mod:`~graphcast_zero.workflow.demo_run`: ``run_demo``.

Everything is re-exported here, so ``from graphcast_zero import workflow; workflow.run_inference``
works. To replace a helper in a test, patch the submodule that calls it (for example
``workflow.inference.write_pictures``), since each submodule looks names up in its own namespace.
"""

from graphcast_zero.workflow.choosing import choose_dataset, choose_params, newest_file, newest_run
from graphcast_zero.workflow.compile_cache import use_compilation_cache
from graphcast_zero.workflow.demo_run import run_demo
from graphcast_zero.workflow.inference import InferenceResult, MapOptions, run_inference
from graphcast_zero.workflow.inputs import Setup, load_setup
from graphcast_zero.workflow.options import Log, RandomModel, positive_number, precision_option
from graphcast_zero.workflow.run_folder import (
    PREDICTIONS,
    RUN_INFO,
    default_run_name,
    staged_folder,
)
from graphcast_zero.workflow.run_info import RECORDED_PACKAGES, environment_info
from graphcast_zero.workflow.scoring import (
    CHART_LEVEL,
    MAP_VARIABLE,
    ScoredRun,
    default_level,
    lead_times,
    locate_predictions,
    map_choices,
    parse_lead_time,
    run_evaluate,
    run_plot,
    score_run,
    write_pictures,
)
from graphcast_zero.workflow.train import (
    HISTORY,
    OPTIMIZER_STATE,
    TRAINED,
    Cadence,
    TrainingFiles,
    TrainingInputs,
    TrainingResult,
    build_training_predictor,
    choose_training_inputs,
    run_training,
    train_predictor,
)
from graphcast_zero.workflow.train_data import Era5Training, training_source
from graphcast_zero.workflow.train_plan import PlanOptions, TrainingPlan
from graphcast_zero.workflow.train_records import save_training

__all__ = [
    "CHART_LEVEL",
    "Cadence",
    "Era5Training",
    "HISTORY",
    "InferenceResult",
    "Log",
    "MAP_VARIABLE",
    "MapOptions",
    "OPTIMIZER_STATE",
    "PREDICTIONS",
    "PlanOptions",
    "RECORDED_PACKAGES",
    "RUN_INFO",
    "RandomModel",
    "ScoredRun",
    "Setup",
    "TRAINED",
    "TrainingFiles",
    "TrainingInputs",
    "TrainingPlan",
    "TrainingResult",
    "build_training_predictor",
    "choose_dataset",
    "choose_params",
    "choose_training_inputs",
    "default_level",
    "default_run_name",
    "lead_times",
    "environment_info",
    "load_setup",
    "locate_predictions",
    "map_choices",
    "newest_file",
    "newest_run",
    "parse_lead_time",
    "positive_number",
    "precision_option",
    "run_demo",
    "run_evaluate",
    "run_inference",
    "run_plot",
    "run_training",
    "save_training",
    "score_run",
    "staged_folder",
    "train_predictor",
    "training_source",
    "use_compilation_cache",
    "write_pictures",
]
