"""The converter check: rebuild the bucket's example and print the differences per variable."""

from __future__ import annotations

import pytest
import xarray as xr

from graphcast_zero import fetch, remotes
from graphcast_zero.paths import DataPaths
from graphcast_zero.sources.converter_check import check_converter

from ..gcs_emulator import upload

EXAMPLE = "source-era5_date-2022-01-01_res-4.0_levels-13_steps-02.nc"


@pytest.mark.slow
def test_the_check_prints_zero_where_the_example_agrees(emulator, tmp_path):
    # The bucket's "example" here: the converter's own output, with temperature at 500 hPa + 1 K.
    report = fetch.fetch_data(
        data_dir=tmp_path / "made", source="era5", endpoint=emulator, progress=False,
        log=lambda _: None,
        era5=fetch.Era5Options(init="2022-01-01T06", steps=2, resolution=4.0, levels=13, store="arco"),
    )  # fmt: skip
    example = xr.load_dataset(report.files[-1].path, decode_timedelta=True)
    example["temperature"].loc[{"level": 500}] += 1.0
    example.to_netcdf(tmp_path / EXAMPLE)
    upload(
        emulator,
        remotes.BUCKET,
        {f"graphcast/dataset/{EXAMPLE}": (tmp_path / EXAMPLE).read_bytes()},
    )
    lines = []
    rows = check_converter(
        DataPaths(tmp_path / "data"), example=EXAMPLE, store="arco", endpoint=emulator,
        progress=False, log=lines.append,
    )  # fmt: skip
    by_key = {(row["variable"], row["level"]): row for row in rows}
    # +1 K on float32 values near 250 K rounds to their spacing, 1.5e-5 K.
    assert by_key["temperature", 500]["max_abs"] == pytest.approx(1.0, abs=3e-5)
    assert all(row["max_abs"] == 0 for key, row in by_key.items() if key != ("temperature", 500))
    assert len(rows) == 2 + 4 + 1 + 1 + 6 * 13  # statics, surface, precipitation, TISR, levels
    assert "temperature" in lines[-1] and "max |diff|" in lines[-1]
    assert (tmp_path / "data" / "dataset" / EXAMPLE).is_file()
