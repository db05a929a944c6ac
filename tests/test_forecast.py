"""A forecast of a dataset: the rollout of its first window, as predictions in the official layout."""

from __future__ import annotations

import numpy as np
import pytest

from graphcast_zero import data, rollout
from graphcast_zero.forecast import forecast_dataset

from .conftest import tiny_dataset


@pytest.mark.slow
def test_the_forecast_is_the_rollout_of_the_first_window(tiny):
    predictor, params, _ = tiny
    dataset = tiny_dataset()  # 2 input frames and 4 targets, 6 hours apart
    predictions, targets, inputs = forecast_dataset(predictor, params, dataset, steps=2)
    # The first two frames are the inputs, the next two the targets; later frames are left out.
    xr_inputs, xr_targets, forcings = data.forecast_window(dataset, predictor.task_config, 2)
    assert inputs.identical(xr_inputs) and targets.identical(xr_targets)
    np.testing.assert_array_equal(
        targets["temperature"].values, dataset["temperature"].isel(time=[2, 3]).values
    )
    lead_times = np.array([6, 12], dtype="timedelta64[h]").astype("timedelta64[ns]")
    np.testing.assert_array_equal(predictions["time"].values, lead_times)
    # Valid times: the last input frame's date plus the lead time, i.e. the targets' dates.
    np.testing.assert_array_equal(
        predictions["datetime"].values, dataset["datetime"].isel(time=[2, 3]).values
    )
    assert predictions["temperature"].dims == ("batch", "time", "level", "lat", "lon")
    assert predictions["2m_temperature"].dims == ("batch", "time", "lat", "lon")
    np.testing.assert_array_equal(predictions["lat"].values, dataset["lat"].values)
    assert set(predictions.data_vars) == set(predictor.task_config.target_variables)
    # The values are the rollout's, unchanged (same program, same process).
    arrays = rollout.predict(
        predictor, params, data.dataset_to_arrays(inputs), data.dataset_to_arrays(forcings)
    )
    np.testing.assert_array_equal(
        predictions["temperature"].values, np.moveaxis(arrays["temperature"], -1, 2)
    )
    np.testing.assert_array_equal(
        predictions["2m_temperature"].values, arrays["2m_temperature"][..., 0]
    )
