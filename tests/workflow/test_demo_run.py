"""The demo task: the whole path offline on the generated demo bundle."""

from __future__ import annotations

import pytest

from graphcast_zero import workflow
from graphcast_zero.checkpoint import load_checkpoint
from graphcast_zero.paths import DataPaths

from .conftest import assert_picture


@pytest.mark.slow
def test_demo_runs_the_whole_path_offline(tmp_path, compile_cache):
    lines = []
    report = workflow.run_demo(DataPaths(tmp_path / "demo"), iterations=2, log=lines.append)
    forecast = report["inference"]
    assert forecast.predictions.sizes["time"] == 8
    assert_picture(forecast.run_dir / "map_2m_temperature_48h.png")
    assert_picture(forecast.run_dir / "2m_temperature.gif", frames=8)
    assert len(report["training"].losses) == 2
    assert load_checkpoint(report["training"].checkpoint_path).model_config.mesh_size == 3
    assert "Demo finished" in lines[-1] and str(forecast.run_dir) in lines[-1]
