"""Tests for evaluation: scores with answers computed by hand, baselines, tables and writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import evaluation
from graphcast_zero.errors import InputError

OFFICIAL = Path(__file__).resolve().parent / "data" / "official-small"
FIXTURE_DATASET = OFFICIAL / "dataset" / "source-fake_date-2022-01-01_res-4.0_levels-13_steps-04.nc"

LAT = np.array([-60.0, 0.0, 60.0])  # weights 0.75, 1.5, 0.75: exactly ∝ cos(lat)
LON = np.array([0.0, 90.0, 180.0, 270.0])
LEVELS = np.array([500, 850])
HOURS = np.array([6, 12, 18])


def _truth(batch: int = 1, lat=LAT, seed: int = 0) -> xr.Dataset:
    """A random state with one surface and one atmospheric variable on a tiny grid."""
    rng = np.random.default_rng(seed)
    lead = HOURS * np.timedelta64(1, "h")
    coords = {"time": lead.astype("timedelta64[ns]"), "lat": lat, "lon": LON, "level": LEVELS}
    shape = (batch, HOURS.size, lat.size, LON.size)
    return xr.Dataset(
        {
            "2m_temperature": (("batch", "time", "lat", "lon"), 280 + rng.normal(size=shape)),
            "temperature": (
                ("batch", "time", "level", "lat", "lon"),
                250 + rng.normal(size=(batch, HOURS.size, LEVELS.size, lat.size, LON.size)),
            ),
        },
        coords=coords,
    )


def _lat_pattern(values, lat=LAT) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=("lat",), coords={"lat": lat})


def test_latitude_weights_follow_cos_and_have_mean_one():
    np.testing.assert_allclose(evaluation.latitude_weights(LAT), [0.75, 1.5, 0.75])
    np.testing.assert_allclose(evaluation.latitude_weights(LAT[::-1]), [0.75, 1.5, 0.75])
    np.testing.assert_allclose(evaluation.latitude_weights([-45.0, 45.0]), [1.0, 1.0])


def test_latitude_weights_give_poles_their_cap():
    # Rows at -90, 0, 90 stand for bands of 45°, 90° and 45°: caps 1 − cos45°, belt 2·sin45°.
    cap, belt = 1 - np.sqrt(0.5), 2 * np.sqrt(0.5)
    expected = np.array([cap, belt, cap]) / ((2 * cap + belt) / 3)
    np.testing.assert_allclose(evaluation.latitude_weights([-90.0, 0.0, 90.0]), expected)
    # The fixture's 4° grid with poles: interior ∝ cos(lat), poles sin²(Δ/4) against sin(Δ/2)cos.
    lat = xr.open_dataset(FIXTURE_DATASET).lat.values
    delta = np.deg2rad(4.0)
    area = np.cos(np.deg2rad(lat)) * np.sin(delta / 2)
    area[[0, -1]] = np.sin(delta / 4) ** 2
    weights = evaluation.latitude_weights(lat)
    np.testing.assert_allclose(weights, area / area.mean(), rtol=1e-6)
    assert weights.mean() == pytest.approx(1.0) and (weights > 0).all()


@pytest.mark.parametrize("lat", [[0.0, 0.0, 10.0], [-95.0, 0.0], []])
def test_latitude_weights_reject_bad_latitudes(lat):
    with pytest.raises(InputError):
        evaluation.latitude_weights(lat)


def test_offset_forecast_scores_exactly():
    truth = _truth(batch=2)
    # The forecast's dims are ordered like the official predictions file: time before batch.
    forecast = (truth + 1).transpose("time", "batch", ...)
    rmse, bias = evaluation.rmse(forecast, truth), evaluation.bias(forecast, truth)
    assert rmse["2m_temperature"].dims == ("time",)
    assert set(rmse["temperature"].dims) == {"time", "level"}
    for scores, expected in ((rmse, 1.0), (bias, 1.0)):
        for name in scores.data_vars:
            np.testing.assert_allclose(scores[name].values, expected, rtol=1e-12)
    np.testing.assert_allclose(evaluation.bias(truth - 2, truth)["temperature"].values, -2.0)


def test_latitude_pattern_weighted_by_cos():
    truth = _truth()
    # Error 3 on the ±60° rows (weight 0.75 each), 1 on the equator (weight 1.5).
    forecast = truth + _lat_pattern([3.0, 1.0, 3.0])
    np.testing.assert_allclose(evaluation.bias(forecast, truth)["2m_temperature"], 2.0)
    np.testing.assert_allclose(evaluation.rmse(forecast, truth)["temperature"], np.sqrt(5.0))


def test_zonal_wave_has_no_bias_and_rms_of_a_cosine():
    truth = _truth()
    wave = xr.DataArray(2.5 * np.cos(np.deg2rad(LON)), dims=("lon",), coords={"lon": LON})
    forecast = truth + wave  # a cos(lon) error, equal on every latitude
    np.testing.assert_allclose(evaluation.bias(forecast, truth)["2m_temperature"], 0.0, atol=1e-12)
    np.testing.assert_allclose(evaluation.rmse(forecast, truth)["2m_temperature"], 2.5 / np.sqrt(2))


def test_error_on_a_pole_row_counts_with_the_cap_area():
    lat = np.array([-90.0, 0.0, 90.0])
    truth = _truth(lat=lat)
    forecast = truth + _lat_pattern([0.0, 0.0, 1.0], lat)
    # Weights ∝ (1 − √½, 2√½, 1 − √½) sum to 2: the north cap holds (1 − √½)/2 of the area.
    expected = (1 - np.sqrt(0.5)) / 2
    np.testing.assert_allclose(evaluation.bias(forecast, truth)["2m_temperature"], expected)
    np.testing.assert_allclose(
        evaluation.rmse(forecast, truth)["2m_temperature"], np.sqrt(expected)
    )


def test_scores_per_lead_time_and_over_the_batch():
    truth = _truth(batch=2)
    growth = xr.DataArray([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], dims=("batch", "time"))
    scores = evaluation.evaluate(truth + growth, truth)
    np.testing.assert_allclose(scores.bias["2m_temperature"], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(scores.rmse["2m_temperature"], np.sqrt([5.0, 10.0, 17.0]))
    assert scores.persistence_rmse is None and scores.acc is None


def test_acc_is_one_minus_one_and_zero():
    truth = _truth()
    climatology = truth.isel(batch=0, time=0, drop=True) - 3.0
    anomaly = truth - climatology
    acc = evaluation.acc
    np.testing.assert_allclose(acc(climatology + 2 * anomaly, truth, climatology).to_array(), 1.0)
    np.testing.assert_allclose(acc(climatology - anomaly, truth, climatology).to_array(), -1.0)
    # cos(lon) and sin(lon) anomalies are orthogonal on the four longitudes.
    lon = xr.DataArray(np.deg2rad(LON), dims=("lon",), coords={"lon": LON})
    cos_truth = climatology + np.cos(lon) + 0 * truth
    sin_forecast = climatology + np.sin(lon) + 0 * truth
    np.testing.assert_allclose(
        acc(sin_forecast, cos_truth, climatology).to_array(), 0.0, atol=1e-12
    )


def test_persistence_of_a_constant_field_is_perfect():
    truth = _truth()
    steady = truth.isel(time=[0, 0, 0]).assign_coords(time=truth.time)  # same map at every lead
    inputs = truth.isel(time=[1, 0]).assign_coords(time=np.array([-6, 0]) * np.timedelta64(1, "h"))
    forecast = evaluation.persistence_forecast(inputs, steady.time.values)
    assert forecast["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    np.testing.assert_array_equal(forecast.time.values, steady.time.values)
    xr.testing.assert_equal(forecast, steady)  # the last input frame (time 0) held fixed
    scores = evaluation.evaluate(steady + 0.25, steady, last_inputs=inputs)
    np.testing.assert_array_equal(scores.persistence_rmse.to_array(), 0.0)
    np.testing.assert_allclose(scores.rmse.to_array(), 0.25)
    assert evaluation.metrics_table(scores)[0]["skill_vs_persistence"] is None


def test_persistence_of_a_drifting_field_and_skill():
    truth = _truth()
    steps = xr.DataArray([1.0, 2.0, 3.0], dims=("time",), coords={"time": truth.time})
    drifting = truth.isel(time=0, drop=True) + steps  # the state warms by 1 per step
    last = drifting.isel(time=0) - 1.0  # the state at lead time 0
    scores = evaluation.evaluate(drifting + 0.5, drifting, last_inputs=last)
    np.testing.assert_allclose(scores.persistence_bias["2m_temperature"], [-1.0, -2.0, -3.0])
    np.testing.assert_allclose(scores.persistence_rmse["temperature"].sel(level=500), [1, 2, 3])
    rows = evaluation.metrics_table(scores, variables=["2m_temperature"])
    assert [row["skill_vs_persistence"] for row in rows] == pytest.approx([0.5, 0.75, 5 / 6])


def test_persistence_skips_variables_the_inputs_lack():
    truth = _truth()
    scores = evaluation.evaluate(truth + 1, truth, last_inputs=truth.isel(time=0)[["temperature"]])
    assert list(scores.persistence_rmse.data_vars) == ["temperature"]
    row = evaluation.metrics_table(scores, variables=["2m_temperature"])[0]
    assert row["persistence_rmse"] is None and row["skill_vs_persistence"] is None


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda t: t.drop_vars("temperature"), "temperature"),
        (lambda t: t.assign_coords(lat=t.lat + 1), "lat"),
        (lambda t: t.isel(level=[0]), "level"),
        (lambda t: t.assign_coords(time=t.time + np.timedelta64(6, "h")), "time"),
        (lambda t: t.assign(temperature=t.temperature.isel(level=0)), "temperature"),
    ],
)
def test_mismatches_raise_one_line_input_errors(change, words):
    truth = _truth()
    with pytest.raises(InputError, match=words) as caught:
        evaluation.evaluate(truth + 1, change(truth))
    assert "\n" not in str(caught.value)


def test_climatology_must_cover_the_variables():
    truth = _truth()
    with pytest.raises(InputError, match="climatology: missing variable"):
        evaluation.acc(truth, truth, truth.isel(time=0)[["temperature"]])
    with pytest.raises(InputError, match="climatology need no other dims"):
        evaluation.acc(truth, truth, truth.expand_dims(member=2))


def test_official_fixture_scores_match_an_independent_computation():
    predictions = xr.load_dataset(OFFICIAL / "reference" / "predictions.nc")
    dataset = xr.load_dataset(FIXTURE_DATASET)
    targets = dataset.isel(time=slice(2, 6)).assign_coords(time=predictions.time.values)
    scores = evaluation.evaluate(predictions, targets, last_inputs=dataset.isel(time=[1]))
    assert set(scores.variables) == set(predictions.data_vars)
    # [time, batch, level, lat, lon] in the file; the targets are [batch, time, level, lat, lon].
    error = predictions["temperature"].values.astype(np.float64) - np.moveaxis(
        targets["temperature"].values, 0, 1
    )
    weights = evaluation.latitude_weights(dataset.lat).values[:, None]  # [lat, 1]
    mse = (error**2 * weights).mean(axis=(1, 3, 4)) / weights.mean()  # [time, level]
    np.testing.assert_allclose(scores.rmse["temperature"].values, np.sqrt(mse), rtol=1e-9)
    assert (scores.persistence_rmse.to_array() > 0).all()


def test_metrics_table_rows_and_text():
    truth = _truth()
    scores = evaluation.evaluate(truth + 1, truth, last_inputs=truth.isel(time=0) + 2)
    rows = evaluation.metrics_table(scores)
    assert len(rows) == HOURS.size * (1 + LEVELS.size)
    # At lead 6h persistence (the 6h truth + 2) is off by exactly 2: skill 1 − 1/2.
    assert rows[0] == pytest.approx(
        {"variable": "2m_temperature", "level": None, "lead_time_hours": 6, "rmse": 1.0,
         "bias": 1.0, "acc": None, "persistence_rmse": 2.0, "persistence_bias": 2.0,
         "persistence_acc": None, "skill_vs_persistence": 0.5}
    )  # fmt: skip
    assert [(r["variable"], r["level"], r["lead_time_hours"]) for r in rows[3:5]] == [
        ("temperature", 500, 6),
        ("temperature", 500, 12),
    ]
    assert len(evaluation.metrics_table(scores, levels=[850])) == HOURS.size * 2
    text = evaluation.format_metrics_table(rows).splitlines()
    assert len(text) == len(rows) + 2 and "rmse" in text[0] and "acc" not in text[0]
    with pytest.raises(InputError, match="geopotential"):
        evaluation.metrics_table(scores, variables=["geopotential"])


def test_skill_vs_persistence_at_one_lead_time_and_the_verdict():
    truth = _truth()
    # Errors: forecast 1 everywhere; persistence 2 for 2m_temperature, 0.5 for temperature.
    last = truth.isel(time=0).assign(temperature=truth.temperature.isel(time=0) + 0.5) + xr.Dataset(
        {"2m_temperature": 2.0, "temperature": 0.0}
    )
    scores = evaluation.evaluate(truth + 1, truth, last_inputs=last)
    skills = evaluation.skill_vs_persistence(scores, 6, level=850)
    assert skills == pytest.approx({"2m_temperature": 0.5, "temperature": -1.0})
    assert evaluation.persistence_verdict(skills, 6, 850) == (
        "The forecast beats persistence at 6 h on 1 of 2 variables (atmospheric ones at 850 hPa)."
    )
    # The surface variable has no level; an unscored lead time or level is named.
    assert list(evaluation.skill_vs_persistence(scores, 6, level=1000)) == ["2m_temperature"]
    with pytest.raises(InputError, match="at 24 h"):
        evaluation.skill_vs_persistence(scores, 24)
    with pytest.raises(InputError, match="persistence"):
        evaluation.skill_vs_persistence(evaluation.evaluate(truth + 1, truth), 6)


def _scores_with_nan() -> tuple[xr.Dataset, xr.Dataset, evaluation.Evaluation]:
    truth = _truth(batch=2, seed=1)
    forecast = truth + xr.DataArray([0.5, -1.5], dims=("batch",)) * truth.lat / 60
    climatology = truth.mean(["batch", "time"])
    last = truth.isel(time=0)[["temperature"]] - 1.0  # no 2m_temperature: persistence nulls
    return forecast, truth, evaluation.evaluate(forecast, truth, last, climatology)


def _independent_rmse(forecast, truth, name, level, hours) -> float:
    sel = {"time": np.timedelta64(hours, "h")} | ({} if level is None else {"level": level})
    error = (forecast[name].sel(sel) - truth[name].sel(sel)).transpose("batch", "lat", "lon").values
    weights = np.cos(np.deg2rad(LAT))[None, :, None]
    return float(np.sqrt((error**2 * weights).sum() / (weights.sum() * 2 * LON.size)))


def test_metrics_json_rereads_and_matches_recomputed_scores(tmp_path):
    forecast, truth, scores = _scores_with_nan()
    path = evaluation.write_metrics_json(scores, tmp_path / "out" / "metrics.json")
    payload = json.loads(path.read_text())
    assert payload["columns"] == list(evaluation.ROW_FIELDS)
    assert len(payload["rows"]) == HOURS.size * (1 + LEVELS.size)
    for row in payload["rows"]:
        expected = _independent_rmse(
            forecast, truth, row["variable"], row["level"], row["lead_time_hours"]
        )
        assert row["rmse"] == pytest.approx(expected, rel=1e-12)
        assert (row["persistence_rmse"] is None) == (row["variable"] == "2m_temperature")
        assert -1 <= row["acc"] <= 1
    again = evaluation.read_metrics_json(path)
    for field in ("rmse", "bias", "acc", "persistence_rmse", "persistence_bias", "persistence_acc"):
        xr.testing.assert_allclose(
            getattr(again, field), getattr(scores, field).transpose("time", ...)
        )
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_metrics_csv_rereads_and_matches_recomputed_scores(tmp_path):
    forecast, truth, scores = _scores_with_nan()
    path = evaluation.write_metrics_csv(scores, tmp_path / "metrics.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == HOURS.size * (1 + LEVELS.size)
    for row in rows:
        level = int(row["level"]) if row["level"] else None
        expected = _independent_rmse(
            forecast, truth, row["variable"], level, int(row["lead_time_hours"])
        )
        assert float(row["rmse"]) == pytest.approx(expected, rel=1e-12)
        where = {"time": np.timedelta64(int(row["lead_time_hours"]), "h")}
        where |= {} if level is None else {"level": level}
        assert float(row["rmse"]) == float(
            scores.rmse[row["variable"]].sel(where)
        )  # full precision
        if row["persistence_rmse"]:
            skill = 1 - float(row["rmse"]) / float(row["persistence_rmse"])
            assert float(row["skill_vs_persistence"]) == pytest.approx(skill)
        else:
            assert row["skill_vs_persistence"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_read_metrics_json_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"rows": []}')
    with pytest.raises(InputError, match="other.json"):
        evaluation.read_metrics_json(path)


def test_atomic_path_reports_an_unusable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write there"):
        evaluation.write_metrics_csv(evaluation.evaluate(_truth(), _truth()), blocker / "m.csv")
