"""Each forecast's scores laid out for the store, and the campaign's from all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from graphcast_zero.hindcast import scores
from graphcast_zero.hindcast.store import SCORE_FIELDS

LEADS = (np.arange(1, 3) * np.timedelta64(6, "h")).astype("m8[ns]")
INITS = pd.date_range("2022-01-01", periods=2, freq="12h").values


def per_init(field_values: dict[str, list]) -> dict[str, xr.Dataset]:
    """Score fields over two initialisations and two lead times for one surface variable."""
    fields = {}
    for field in SCORE_FIELDS:
        values = np.asarray(field_values.get(field, np.full((2, 2), np.nan)), np.float64)
        fields[field] = xr.Dataset(
            {"2m_temperature": (("time", "prediction_timedelta"), values)},
            coords={"time": INITS, "prediction_timedelta": LEADS},
        )
    return fields


def test_the_campaign_rmse_is_the_root_of_the_mean_square():
    fields = per_init({"rmse": [[3.0, 1.0], [4.0, np.nan]], "bias": [[1.0, 2.0], [-3.0, 4.0]],
                       "acc": [[0.5, np.nan], [0.7, 0.9]]})  # fmt: skip
    campaign = scores.aggregate(fields)
    np.testing.assert_allclose(campaign.rmse["2m_temperature"].values, [np.sqrt(12.5), 1.0])
    np.testing.assert_allclose(campaign.bias["2m_temperature"].values, [-1.0, 3.0])
    np.testing.assert_allclose(campaign.acc["2m_temperature"].values, [0.6, 0.9])
    assert campaign.persistence_rmse is None  # nothing scored there
    np.testing.assert_array_equal(campaign.rmse["time"].values, LEADS)


def test_a_forecasts_scores_fill_every_lead_time_with_nan_where_unscored():
    truth = xr.Dataset(
        {"2m_temperature": (("batch", "time", "lat", "lon"), np.full((1, 2, 3, 4), 280.0))},
        coords={"time": LEADS, "lat": [-60.0, 0.0, 60.0], "lon": [0.0, 90.0, 180.0, 270.0]},
    )
    forecast = truth + 1.0  # RMSE 1 and bias 1 everywhere
    inputs = truth.isel(time=[0]) - 2.0
    evaluated = scores.score_forecast(forecast, truth, inputs, 1, None)
    template = xr.Dataset(
        {"2m_temperature": (("prediction_timedelta",), np.full(2, np.nan))},
        coords={"prediction_timedelta": LEADS},
    )
    laid_out = scores.store_scores(evaluated, template, INITS[1])
    assert set(laid_out) == set(SCORE_FIELDS)
    np.testing.assert_allclose(laid_out["rmse"]["2m_temperature"].values, [[1.0, np.nan]])
    np.testing.assert_allclose(laid_out["bias"]["2m_temperature"].values, [[1.0, np.nan]])
    np.testing.assert_allclose(
        laid_out["persistence_rmse"]["2m_temperature"].values, [[2.0, np.nan]]
    )
    assert np.isnan(laid_out["acc"]["2m_temperature"].values).all()  # no climatology
    np.testing.assert_array_equal(laid_out["rmse"]["time"].values, [INITS[1]])
    assert scores.score_forecast(forecast, truth, inputs, 0, None) is None


def test_the_per_init_table_has_one_row_per_forecast_variable_and_lead(tmp_path):
    fields = per_init({"rmse": [[3.0, 1.0], [np.nan, np.nan]], "persistence_rmse": [[6.0, 2.0],
                       [np.nan, np.nan]]})  # fmt: skip
    seconds = xr.DataArray([1.5, np.nan], dims="time")
    rows = scores.per_init_rows(fields, seconds, level=500)
    assert [(row["init_time"], row["lead_time_hours"], row["rmse"]) for row in rows] == [
        ("2022-01-01T00:00:00", 6, 3.0), ("2022-01-01T00:00:00", 12, 1.0),
    ]  # fmt: skip
    assert rows[0]["skill_vs_persistence"] == 0.5 and rows[0]["forecast_seconds"] == 1.5
    path = scores.write_per_init_csv(rows, tmp_path / "per_init.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(scores.PER_INIT_FIELDS) and len(lines) == 3
