"""Dataset → inputs/targets/forcings → arrays, and back; progress features by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from graphcast_zero import data
from graphcast_zero.config import TASK_13, TASK_13_PRECIP_OUT
from graphcast_zero.model.graphcast import num_input_channels, num_output_channels

from .conftest import FIXTURE_DATASET


@pytest.fixture(scope="module")
def dataset():
    return xr.load_dataset(FIXTURE_DATASET)


def test_year_progress_uses_the_tropical_year_and_does_not_wrap_at_new_year():
    assert data.year_progress(np.array([0])) == 0.0
    half_year = int(365.24219 * 86400 / 2)
    assert data.year_progress(np.array([half_year]))[0] == pytest.approx(0.5, abs=1e-6)
    new_year_2022 = data.seconds_since_epoch(np.array(["2022-01-01T00"], dtype="datetime64[s]"))
    # 52 tropical years after 1970-01-01 fall about 10 hours before midnight on 2022-01-01.
    expected = np.mod(new_year_2022 / 86400 / 365.24219, 1.0)
    assert data.year_progress(new_year_2022)[0] == pytest.approx(expected[0], abs=1e-6)
    assert expected[0] * 365.24219 * 24 == pytest.approx(9.74, abs=0.01)


def test_day_progress_shifts_with_longitude():
    noon = np.array([12 * 3600])
    progress = data.day_progress(noon, np.array([0.0, 90.0, 180.0, 270.0]))
    np.testing.assert_allclose(progress, [[0.5, 0.75, 0.0, 0.25]], atol=1e-6)


def test_progress_features_match_the_fixture_file_convention(dataset):
    derived = data.add_progress_features(dataset)
    assert derived["year_progress_sin"].dims == ("batch", "time")
    assert derived["day_progress_cos"].dims == ("batch", "time", "lon")
    assert derived["day_progress_sin"].dtype == np.float32
    np.testing.assert_allclose(
        derived["year_progress_sin"] ** 2 + derived["year_progress_cos"] ** 2, 1, atol=1e-6
    )


def test_extract_inputs_targets_forcings_shifts_time(dataset):
    inputs, targets, forcings = data.extract_inputs_targets_forcings(
        dataset, TASK_13, slice("6h", "24h")
    )
    assert list(pd.to_timedelta(inputs.time.values)) == [pd.Timedelta("-6h"), pd.Timedelta(0)]
    assert list(pd.to_timedelta(targets.time.values).total_seconds() / 3600) == [6, 12, 18, 24]
    assert set(forcings.data_vars) == set(TASK_13.forcing_variables)
    assert "geopotential_at_surface" in inputs and "time" not in inputs["land_sea_mask"].dims
    assert inputs.sizes["level"] == 13


def test_one_step_extraction_takes_the_last_frames(dataset):
    inputs, targets, _ = data.extract_inputs_targets_forcings(dataset, TASK_13, slice("6h", "6h"))
    # The dataset's last frame becomes the single target; the two before it are the inputs.
    np.testing.assert_array_equal(
        targets["2m_temperature"].values[:, 0], dataset["2m_temperature"].values[:, -1]
    )
    np.testing.assert_array_equal(
        inputs["2m_temperature"].values[:, -1], dataset["2m_temperature"].values[:, -2]
    )


def test_arrays_have_the_official_channel_widths(dataset):
    inputs, targets, forcings = data.extract_inputs_targets_forcings(
        dataset, TASK_13, slice("6h", "24h")
    )
    arrays = data.dataset_to_arrays(inputs)
    assert arrays["temperature"].shape == (1, 2, 46, 90, 13)
    assert arrays["land_sea_mask"].shape == (1, 1, 46, 90, 1)
    assert arrays["year_progress_sin"].shape == (1, 2, 46, 90, 1)
    width = sum(a.shape[1] * a.shape[-1] for a in arrays.values())
    width += sum(a.shape[-1] for a in data.dataset_to_arrays(forcings).values())
    assert width == num_input_channels(TASK_13) == 12 * 13 + 27
    assert num_input_channels(TASK_13) + 3 == 186  # the contract's grid node width
    assert num_output_channels(TASK_13) == 5 + 6 * 13
    assert num_input_channels(TASK_13_PRECIP_OUT) == num_input_channels(TASK_13) - 2


def test_arrays_round_trip_to_the_prediction_layout(dataset):
    _, targets, _ = data.extract_inputs_targets_forcings(dataset, TASK_13, slice("6h", "12h"))
    arrays = data.dataset_to_arrays(targets)
    back = data.arrays_to_dataset(
        arrays,
        lat=dataset.lat.values,
        lon=dataset.lon.values,
        levels=TASK_13.pressure_levels,
        lead_times=targets.time.values,
        reference_datetimes=dataset.datetime.values[:, 3],
    )
    assert back["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    assert back["2m_temperature"].dims == ("batch", "time", "lat", "lon")
    for name in targets.data_vars:
        expected = targets[name].transpose(*back[name].dims)
        xr.testing.assert_allclose(back[name].drop_vars("datetime"), expected)
    assert back.datetime.values[0, 0] == dataset.datetime.values[0, 4]
