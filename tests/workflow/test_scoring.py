"""Scores and pictures of a finished forecast: metrics by hand, evaluate and plot options."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import workflow
from graphcast_zero.errors import InputError
from graphcast_zero.paths import DataPaths

from ..conftest import FIXTURE_DATASET
from .conftest import DATASET_NAME, assert_picture


def inputs_and_targets(steps: int = 4):
    dataset = xr.load_dataset(FIXTURE_DATASET)
    frames = dataset.isel(time=slice(0, 2 + steps))
    return frames.isel(time=slice(0, 2)), frames.isel(time=slice(2, None))


def band_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Area of each latitude band of an evenly spaced grid with both poles, by hand."""
    half = np.deg2rad(np.diff(lat_deg)[0] / 2)
    lat = np.deg2rad(lat_deg)
    upper, lower = np.minimum(lat + half, np.pi / 2), np.maximum(lat - half, -np.pi / 2)
    area = np.sin(upper) - np.sin(lower)
    return area / area.mean()


@pytest.mark.slow
def test_metrics_recomputed_by_hand(forecast):
    _, result, _ = forecast
    predictions = xr.load_dataset(result.predictions_path)
    inputs, targets = inputs_and_targets()
    weights = band_weights(targets.lat.values)[:, None]  # [lat, 1]
    rows = json.loads((result.run_dir / "metrics.json").read_text())["rows"]
    by_key = {(r["variable"], r["level"], r["lead_time_hours"]): r for r in rows}
    for step in range(4):
        truth = targets["2m_temperature"].values[0, step]  # [lat, lon]
        error = predictions["2m_temperature"].values[0, step] - truth
        persistence = inputs["2m_temperature"].values[0, -1] - truth
        row = by_key[("2m_temperature", None, 6 * (step + 1))]
        assert row["rmse"] == pytest.approx(np.sqrt((weights * error**2).mean()), rel=1e-5)
        assert row["bias"] == pytest.approx((weights * error).mean(), rel=1e-4, abs=1e-6)
        assert row["persistence_rmse"] == pytest.approx(
            np.sqrt((weights * persistence**2).mean()), rel=1e-5
        )
    z500 = (
        predictions["geopotential"].sel(level=500).values[0, 3]
        - targets["geopotential"].sel(level=500).values[0, 3]
    )
    assert by_key[("geopotential", 500, 24)]["rmse"] == pytest.approx(
        np.sqrt((weights * z500**2).mean()), rel=1e-5
    )
    csv_lines = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) == 1 + 4 * (5 + 6 * 13)


@pytest.mark.slow
def test_pictures_are_real_images(forecast):
    _, result, _ = forecast
    assert_picture(result.run_dir / "map_2m_temperature_24h.png")
    assert_picture(result.run_dir / "2m_temperature.gif", frames=4)
    assert_picture(result.run_dir / "rmse_vs_lead_time.png")


@pytest.mark.slow
def test_evaluate_prints_the_table_and_rewrites_metrics(forecast):
    paths, result, _ = forecast
    lines = []
    workflow.run_evaluate(
        paths, run="first", variable="temperature", level=850, lead_time="12h", log=lines.append
    )
    table = lines[0].splitlines()
    assert table[0].split()[:4] == ["variable", "level", "lead", "(h)"]
    assert len(table) == 3 and table[2].split()[:3] == ["temperature", "850", "12"]
    written = json.loads((result.run_dir / "metrics.json").read_text())["rows"]
    row = next(
        r
        for r in written
        if (r["variable"], r["level"], r["lead_time_hours"]) == ("temperature", 850, 12)
    )
    assert f"{row['rmse']:.4g}" == table[2].split()[3]


@pytest.mark.slow
def test_evaluate_a_predictions_file_with_another_dataset(forecast, tmp_path):
    paths, result, _ = forecast
    copy = tmp_path / "p.nc"
    shutil.copy(result.predictions_path, copy)
    with pytest.raises(InputError, match="pass --dataset"):
        workflow.run_evaluate(paths, predictions=copy, log=lambda _: None)
    scored = workflow.run_evaluate(
        paths, predictions=copy, dataset=paths.dataset / DATASET_NAME, log=lambda _: None
    )
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "rmse_vs_lead_time.png").is_file()
    assert float(scored.metrics.rmse["2m_temperature"][0]) == pytest.approx(
        float(result.metrics.rmse["2m_temperature"][0])
    )


@pytest.fixture
def forecast_copy(forecast, tmp_path):
    """The forecast's data folder copied (less its cache): plotting adds pictures to the run
    folder, which would change the shared run's files that other tests list."""
    paths, result, extra = forecast
    copied = shutil.copytree(paths.root, tmp_path / "data", ignore=shutil.ignore_patterns("cache"))
    return DataPaths(copied), result, extra


@pytest.mark.slow
def test_plot_a_level_and_lead_time(forecast_copy):
    paths, result, _ = forecast_copy
    pictures = workflow.run_plot(
        paths, variable="geopotential", level=500, lead_time="12", log=lambda _: None
    )
    assert [p.name for p in pictures] == [
        "map_geopotential_500hPa_12h.png", "geopotential_500hPa.gif", "rmse_vs_lead_time.png",
    ]  # fmt: skip
    assert_picture(pictures[0])
    assert_picture(pictures[1], frames=4)


@pytest.mark.slow
def test_plot_several_variables_and_lead_times_zoomed(forecast_copy, monkeypatch):
    from graphcast_zero import plotting

    paths, _, _ = forecast_copy
    drawn, draw = [], plotting.plot_map

    def drawing(field_pred, *args, **kwargs):  # the real drawing, with what it was given noted
        drawn.append(field_pred)
        return draw(field_pred, *args, **kwargs)

    monkeypatch.setattr(plotting, "plot_map", drawing)
    pictures = workflow.run_plot(
        paths, variable="2m_temperature,temperature:850,geopotential", level=300,
        lead_time="6h,24h", region="-30,30,-40,20", log=lambda _: None,
    )  # fmt: skip
    assert [p.name for p in pictures] == [
        "map_2m_temperature_6h.png", "map_2m_temperature_24h.png", "2m_temperature.gif",
        "map_temperature_850hPa_6h.png", "map_temperature_850hPa_24h.png",
        "temperature_850hPa.gif", "map_geopotential_300hPa_6h.png",
        "map_geopotential_300hPa_24h.png", "geopotential_300hPa.gif", "rmse_vs_lead_time.png",
    ]  # fmt: skip
    assert_picture(pictures[0])
    assert_picture(pictures[2], frames=4)
    # The 4° grid's points in the box, longitudes running on across 0°.
    assert drawn[0].lat.values.tolist() == list(np.arange(-30.0, 31.0, 4.0))
    assert drawn[0].lon.values.tolist() == list(np.arange(-40.0, 21.0, 4.0))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"region": "10,0,0,20"}, "needs -90 ≤ lat0 < lat1 ≤ 90"),
        ({"region": "0,1,0,20"}, "--region 0,1,0,20 holds 0 grid point"),
        ({"variable": "2m_temperature,snow"}, "no 'snow' in the predictions"),
        ({"lead_time": "6h,7h"}, "--lead-time '7h' is not a predicted lead time"),
        ({"lead_time": "7h"}, "--lead-time '7h' is not a predicted lead time: choose one of 6h"),
        ({"variable": "temperature", "level": 123}, "no level 123 hPa for temperature"),
        ({"variable": "2m_temperature", "level": 500}, "surface variable: drop --level"),
        ({"variable": "snow"}, "no 'snow' in the predictions"),
        ({"run": "nope"}, "no run folder"),
    ],
)
@pytest.mark.slow
def test_plot_options_are_checked(forecast, options, message):
    paths, _, _ = forecast
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        workflow.run_plot(paths, **options, log=lambda _: None)
