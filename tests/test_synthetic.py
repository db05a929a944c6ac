"""The synthetic-data generator and the offline demo bundle (tiny 10° grids)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from graphcast_zero import catalog as cat
from graphcast_zero import config, demo_model, fetch, synthetic
from graphcast_zero.errors import InputError
from graphcast_zero.paths import STATS_FILES, DataPaths

from .conftest import FIXTURE_DATASET, REAL_STATS

RES = 10.0


@pytest.fixture(scope="module")
def sample() -> xr.Dataset:
    return synthetic.make_example_dataset(RES, steps=8)


def test_layout_matches_the_official_example(sample):
    with xr.open_dataset(FIXTURE_DATASET) as official:
        assert list(sample.data_vars) == list(official.data_vars)
        for name, variable in official.variables.items():
            assert sample[name].dims == variable.dims, name
            assert sample[name].dtype == variable.dtype, name
    assert dict(sample.sizes) == {"lat": 19, "lon": 36, "batch": 1, "time": 10, "level": 13}
    assert sample.lat.values[[0, -1]].tolist() == [-90, 90] and sample.lon.values[-1] == 350
    assert (sample.time.values == np.arange(10) * np.timedelta64(6, "h")).all()
    assert (sample.datetime.values[0] == np.datetime64("2022-01-01") + sample.time.values).all()
    assert sample.attrs["description"].startswith("SYNTHETIC")


def test_magnitudes_are_realistic(sample):
    def mean_by_level(name):
        return sample[name].mean(["batch", "time", "lat", "lon"]).values

    temperature, geopotential = mean_by_level("temperature"), mean_by_level("geopotential")
    levels = sample.level.values
    assert 180 < sample.temperature.min() and sample.temperature.max() < 320
    troposphere = levels >= 250
    assert (np.diff(temperature[troposphere]) > 0).all()  # warmer lower down (levels ascend in hPa)
    assert (np.diff(sample.geopotential.values, axis=2) < 0).all()  # every column: Φ falls with p
    assert 4.8e4 < geopotential[levels == 500][0] < 5.8e4  # ~5.5 km at 500 hPa
    assert (
        np.abs(sample.u_component_of_wind).max() < 80
        and 5 < np.abs(sample.v_component_of_wind).max() < 40
    )
    assert 0 < sample.specific_humidity.min() and sample.specific_humidity.max() < 0.03
    assert sample.total_precipitation_6hr.min() >= 0 and sample.total_precipitation_6hr.max() < 0.02
    assert (
        9.5e4 < sample.mean_sea_level_pressure.min()
        and sample.mean_sea_level_pressure.max() < 1.06e5
    )
    land = sample.land_sea_mask.values
    assert land.min() >= 0 and land.max() <= 1 and 0.2 < land.mean() < 0.5
    assert (
        0 <= sample.toa_incident_solar_radiation.min()
        and sample.toa_incident_solar_radiation.max() > 3e6
    )


def test_waves_move_so_later_steps_differ_more(sample):
    z500 = sample.geopotential.sel(level=500).isel(batch=0).values
    change = [np.abs(z500[t] - z500[0]).mean() for t in (1, 4, 9)]
    assert 0 < change[0] < change[1] < change[2]


def test_deterministic_and_seeded(sample):
    xr.testing.assert_identical(synthetic.make_example_dataset(RES, steps=8), sample)
    other = synthetic.make_example_dataset(RES, steps=8, seed=1, solar=False)
    assert not np.allclose(other.geopotential, sample.geopotential)


def test_13_and_37_levels_agree_on_shared_levels(sample):
    full = synthetic.make_example_dataset(RES, steps=8, levels=37, solar=False)
    for name in config.ATMOSPHERIC_VARIABLES:
        np.testing.assert_array_equal(full[name].sel(level=sample.level), sample[name])


def test_statistics_have_the_official_layout():
    stats = synthetic.make_statistics(RES, steps=4)
    assert sorted(f"{name}.nc" for name in stats) == sorted(STATS_FILES)
    real = {name: xr.open_dataset(REAL_STATS / f"{name}.nc") for name in stats}
    for name, computed in stats.items():
        assert computed.sizes["level"] == 37 and computed.level.dtype == np.int32
        assert computed.attrs["description"].startswith("SYNTHETIC")
        for variable in computed.data_vars:
            assert computed[variable].dims == real[name][variable].dims, variable
            assert np.isfinite(computed[variable]).all() and computed[variable].dtype == np.float32
            if name != "mean_by_level":
                assert (computed[variable] > 0).all(), (name, variable)
    assert "land_sea_mask" not in stats["diffs_stddev_by_level"]
    assert float(stats["stddev_by_level"]["day_progress"]) == pytest.approx(12**-0.5)
    t2m = float(stats["mean_by_level"]["2m_temperature"])
    assert 260 < t2m < 290  # the real ERA5 mean is 278.2 K


def test_demo_bundle_loads_and_fits_the_demo_model(tmp_path, sample):
    pytest.importorskip("graphcast_zero.model.graphcast")
    from graphcast_zero.checkpoint import load_checkpoint

    written = synthetic.write_demo_bundle(DataPaths(tmp_path), resolution=RES)
    assert sorted(p.relative_to(tmp_path).parts[0] for p in written) == [
        "dataset",
        "params",
        *["stats"] * 3,
    ]
    name = synthetic.dataset_file_name(RES, 13, synthetic.DEMO_STEPS)
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "dataset" / name), sample)
    assert cat.dataset_misfit(config.DEMO_MODEL, cat.parse_dataset_name(name), steps=8) is None
    for stats_file in STATS_FILES:
        assert (
            xr.load_dataset(tmp_path / "stats" / stats_file)
            .attrs["description"]
            .startswith("SYNTHETIC")
        )
    checkpoint = load_checkpoint(tmp_path / "params" / config.DEMO_MODEL.file_name)
    assert checkpoint.model_config == config.DEMO_MODEL.model_config
    assert checkpoint.task_config == config.TASK_13 and "SYNTHETIC" in checkpoint.description
    # The trained weights that ship with the package, copied unchanged (a resolution-0 model).
    shipped = demo_model.shipped_checkpoint()
    assert checkpoint.description == shipped.description
    for module, leaves in shipped.params.items():
        for name, value in leaves.items():
            np.testing.assert_array_equal(checkpoint.params[module][name], value)
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_demo_bundle_never_replaces_real_statistics(tmp_path):
    shutil.copytree(REAL_STATS, tmp_path / "stats")
    with pytest.raises(InputError, match="holds real statistics.*--data-dir"):
        synthetic.write_demo_bundle(DataPaths(tmp_path), resolution=RES)
    assert not (tmp_path / "dataset").exists() or not list((tmp_path / "dataset").iterdir())


def test_fetch_data_source_demo_writes_the_bundle(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        synthetic, "write_demo_bundle", lambda paths, log: calls.append(paths) or []
    )
    report = fetch.fetch_data(source="demo", data_dir=tmp_path, progress=False, log=lambda s: None)
    assert report.source == "demo" and calls == [DataPaths(tmp_path.resolve())]


def test_grid_must_divide_the_sphere():
    with pytest.raises(InputError, match="must divide 180"):
        synthetic.grid(7.0)
