"""Input checks: each misfit of checkpoint, statistics and dataset is one line naming the fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import sources, validation
from graphcast_zero.config import TASK_13, TASK_13_PRECIP_OUT, ModelConfig
from graphcast_zero.errors import InputError
from graphcast_zero.statistics import load_statistics

from .conftest import FIXTURE_DATASET, OFFICIAL

ANY_GRID = ModelConfig(
    resolution=0.0,
    mesh_size=3,
    latent_size=32,
    gnn_msg_steps=4,
    hidden_layers=1,
    radius_query_fraction_edge_length=0.6,
)


@pytest.fixture(scope="module")
def dataset() -> xr.Dataset:
    return xr.load_dataset(FIXTURE_DATASET)


def check(dataset, model=ANY_GRID, task=TASK_13, steps=4):
    validation.check_dataset(dataset, "x.nc", model, task, steps)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as raised:
        call(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message and message
    return message


def test_the_official_fixture_passes(dataset):
    check(dataset)
    assert validation.available_steps(dataset, TASK_13) == 4


def test_a_model_of_another_resolution_names_the_dataset_to_pick(dataset):
    model = dataclasses.replace(ANY_GRID, resolution=1.0)
    message = one_line_error(check, dataset, model)
    assert message.startswith("dataset x.nc has a 4° grid but the model needs 1°")
    assert "res-1" in message and "invoke fetch-data --list" in message


def test_missing_levels(dataset):
    message = one_line_error(check, dataset.isel(level=slice(0, 5)))
    assert "lacks pressure levels [300, 400, 500" in message and "levels-13" in message


def test_precipitation_mode(dataset):
    without = dataset.drop_vars("total_precipitation_6hr")
    assert "era5" in one_line_error(check, without)
    # Output-only precipitation still needs the field as a target to score against.
    assert "lacks total_precipitation_6hr" in one_line_error(
        check, without, task=TASK_13_PRECIP_OUT
    )


def test_missing_variable(dataset):
    message = one_line_error(check, dataset.drop_vars("specific_humidity"))
    assert message.startswith("dataset x.nc lacks specific_humidity")


def test_solar_radiation_and_progress_features_may_be_derived(dataset):
    check(dataset.drop_vars("toa_incident_solar_radiation"))


def test_too_few_time_steps(dataset):
    message = one_line_error(check, dataset, steps=5)
    assert "has 6 time steps but 2 input frames + 5 steps need 7: use --steps 4" in message
    assert "at least 1" in one_line_error(check, dataset, steps=0)


def test_nan_in_an_input_frame(dataset):
    broken = dataset.copy(deep=True)
    broken["2m_temperature"][0, 1, 3, 4] = np.nan
    assert "2m_temperature has 1 NaN/inf" in one_line_error(check, broken)


def test_nan_in_an_unused_frame_is_fine(dataset):
    broken = dataset.copy(deep=True)
    broken["temperature"][0, 5] = np.nan  # the last frame: not used by a 3-step forecast
    check(broken, steps=3)
    assert "temperature has" in one_line_error(check, broken, steps=4)


def test_static_nan(dataset):
    broken = dataset.copy(deep=True)
    broken["land_sea_mask"][0, 0] = np.inf
    assert "land_sea_mask" in one_line_error(check, broken)


def test_grid_layout(dataset):
    assert "sortby('lat')" in one_line_error(check, dataset.isel(lat=slice(None, None, -1)))
    shifted = dataset.assign_coords(lon=dataset.lon - 180)
    assert "longitudes must run 0…360" in one_line_error(check, shifted)
    assert "`datetime`" in one_line_error(check, dataset.drop_vars("datetime"))


def test_truncated_and_missing_netcdf(tmp_path):
    truncated = tmp_path / "cut.nc"
    truncated.write_bytes(FIXTURE_DATASET.read_bytes()[:50_000])
    message = one_line_error(sources.open_dataset, truncated)
    assert str(truncated) in message and "truncated" in message and "fetch" in message
    assert "not found" in one_line_error(sources.open_dataset, tmp_path / "none.nc")


def test_statistics_without_a_variable(tmp_path):
    stats = load_statistics(OFFICIAL / "stats")
    stats = dataclasses.replace(stats, stddev=stats.stddev.drop_vars("geopotential"))
    message = one_line_error(validation.check_statistics, stats, TASK_13, tmp_path)
    assert message.startswith(str(tmp_path / "stddev_by_level")) and "'geopotential'" in message


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = one_line_error(validation.check_writable_folder, blocker / "out")
    assert message.startswith(f"output folder {blocker / 'out'} is not writable")
    assert validation.check_writable_folder(tmp_path / "a" / "b").is_dir()


def test_open_dataset_decodes_time_stored_as_plain_hours(dataset, tmp_path):
    # The bucket's 2023 files store `time` as integer hours without the `dtype` attribute that
    # recent xarray writes; without decode_timedelta=True recent xarray would leave it integer.
    import netCDF4

    path = tmp_path / "bucket-style.nc"
    dataset.isel(lat=slice(0, 3), lon=slice(0, 4))[["2m_temperature"]].to_netcdf(path)
    with netCDF4.Dataset(path, "a") as handle:
        time = handle["time"]
        hours = (time[:] * _hours_per_unit(time.units)).astype("int64")
        for name in time.ncattrs():
            time.delncattr(name)
        time.units = "hours"
        time[:] = hours
    opened = sources.open_dataset(path)
    assert np.issubdtype(opened["time"].dtype, np.timedelta64)
    np.testing.assert_array_equal(opened["time"].values, dataset["time"].values)


def _hours_per_unit(units: str) -> float:
    return {"hours": 1.0, "minutes": 1 / 60, "seconds": 1 / 3600, "nanoseconds": 1 / 3.6e12}[units]
