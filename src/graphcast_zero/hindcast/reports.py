"""The campaign's report files, written beside the store from the scores in it.

Into ``<store name>.scores/`` (``forecasts.zarr`` → ``forecasts.scores/``):

- ``metrics.json``, ``metrics.csv``: the campaign's scores per variable, level and lead time,
  model and persistence (:func:`graphcast_zero.evaluation.write_metrics_json` and ``_csv``);
- ``rmse_vs_lead_time.png``: the headline chart, RMSE against lead time for the model and
  persistence, atmospheric variables at 500 hPa (:mod:`graphcast_zero.plotting`);
- ``per_init.csv``: every forecast's scores (atmospheric variables at 500 hPa) with its time;
- ``hindcast.json``: what ran: options, source, checkpoint, counts, throughput, versions.

They are rebuilt from the whole store at the end of every run, so after a resumed campaign they
cover every forecast, old and new.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Optional

from graphcast_zero import evaluation
from graphcast_zero.atomic import write_json
from graphcast_zero.hindcast import scores as scores_module
from graphcast_zero.hindcast import store
from graphcast_zero.workflow.scoring import default_level

FORMAT = "graphcast-zero-hindcast-report/1"


def reports_folder(output: Path) -> Path:
    """``<store>.scores`` beside the store (its ``.zarr`` suffix replaced)."""
    return output.parent / f"{output.stem}.scores"


def write_reports(
    output: Path, levels, record: dict
) -> tuple[Optional[evaluation.Evaluation], list[Path]]:
    """Writes the report files from the store's scores; returns the campaign's scores (None when
    nothing has a truth yet) and the files written.

    Args:
      output: the store.
      levels: the levels kept (the chart shows 500 hPa, or the first level).
      record: what ``hindcast.json`` says about the run (counts are added here).
    """
    from graphcast_zero import plotting

    folder = reports_folder(output)
    status = store.read_status(output)
    done = status["complete"].values.astype(bool)
    per_init = {
        field: values.isel(time=done) for field, values in store.read_scores(output).items()
    }
    level = default_level("temperature", levels, None) if len(levels) else None
    files = []
    rows = scores_module.per_init_rows(per_init, status["forecast_seconds"][done], level)
    files.append(scores_module.write_per_init_csv(rows, folder / "per_init.csv"))
    metrics = None
    if rows:
        metrics = scores_module.aggregate(per_init)
        files.append(evaluation.write_metrics_json(metrics, folder / "metrics.json"))
        files.append(evaluation.write_metrics_csv(metrics, folder / "metrics.csv"))
        chart = folder / "rmse_vs_lead_time.png"
        files.append(plotting.plot_rmse_vs_lead_time(metrics, chart, level=level or 500))
    record = {
        "format": FORMAT,
        "written": datetime.datetime.now().isoformat(timespec="seconds"),
        "store": str(output),
        "forecasts_complete": int(done.sum()),
        "forecasts_total": int(done.size),
        **record,
    }
    files.append(write_json(record, folder / "hindcast.json"))
    return metrics, files
