"""The campaign's options, checked one by one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphcast_zero.config import TASK_13
from graphcast_zero.errors import InputError
from graphcast_zero.hindcast import campaign
from graphcast_zero.hindcast.source import ERA5, SourceSpec


def test_init_times_run_from_start_to_end_inclusive():
    times = campaign.init_times("2022-01-01T00", "2022-01-02T00", "12h")
    assert list(times) == [pd.Timestamp("2022-01-01T00"), pd.Timestamp("2022-01-01T12"),
                           pd.Timestamp("2022-01-02T00")]  # fmt: skip
    assert len(campaign.init_times("2022-01-01", "2022-01-31T18", "1d")) == 31


@pytest.mark.parametrize(
    ("start", "end", "every", "message"),
    [
        ("2022-01-01", "2022-01-02", "90m", "--every '90m' must be a whole number of hours"),
        ("2022-01-01", "2022-01-02", "0h", "--every '0h'"),
        ("2022-01-01", "2022-01-02", "often", "--every 'often'"),
        ("2022-01-02", "2022-01-01", "12h", "is before --init-start"),
        ("soon", "2022-01-01", "12h", "--init-start 'soon' is not a time"),
    ],
)
def test_bad_times_are_one_line_errors(start, end, every, message):
    with pytest.raises(InputError, match=message) as caught:
        campaign.init_times(start, end, every)
    assert "\n" not in str(caught.value)


def test_variables_default_to_every_target_and_must_be_predicted():
    assert campaign.chosen_variables(None, TASK_13) == tuple(sorted(TASK_13.target_variables))
    assert campaign.chosen_variables("temperature, 2m_temperature", TASK_13) == (
        "temperature", "2m_temperature"
    )  # fmt: skip
    with pytest.raises(InputError, match="--variables 'land_sea_mask': the model predicts"):
        campaign.chosen_variables("land_sea_mask", TASK_13)


def test_levels_are_the_models_ascending_and_none_without_atmospheric_variables():
    variables = ("temperature",)
    assert campaign.chosen_levels(None, TASK_13, variables) == TASK_13.pressure_levels
    assert campaign.chosen_levels("850,500,850", TASK_13, variables) == (500, 850)
    assert campaign.chosen_levels("500", TASK_13, ("2m_temperature",)) == ()
    with pytest.raises(InputError, match="--levels '525': choose among the model's levels 50"):
        campaign.chosen_levels("525", TASK_13, variables)


@pytest.mark.parametrize("steps", [0, -3, "many"])
def test_steps_must_be_positive(steps):
    with pytest.raises(InputError, match="--steps must be at least 1"):
        campaign.positive_steps(steps)


def test_lead_times_are_every_six_hours_from_six():
    spec = SourceSpec("store.zarr", None, ERA5, 4.0, (500,))
    plan = campaign.Campaign(
        pd.date_range("2022-01-01", periods=2, freq="12h"), 3, ("temperature",), (500,), spec,
        None, "auto",
    )  # fmt: skip
    np.testing.assert_array_equal(plan.lead_times, np.array([6, 12, 18], "m8[h]").astype("m8[ns]"))
    assert plan.index_of("2022-01-01T12") == 1
