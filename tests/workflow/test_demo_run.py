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
    # The shipped SYNTHETIC model forecasts: the table shows 24 h and 48 h, then the verdict.
    skills = report["skill_vs_persistence"]
    beaten = sum(skill > 0 for skill in skills.values())
    assert beaten > len(skills) / 2
    verdict = f"beats persistence at 24 h on {beaten} of {len(skills)} variables"
    assert any(verdict in line for line in lines)
    table = next(line for line in lines if line.startswith("variable")).splitlines()
    assert len(table) == 2 + 2 * len(skills) and "skill" in table[0]
