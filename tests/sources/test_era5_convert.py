"""Reading touches only the chunks needed, retries a refused read, and leaves nothing partial."""

from __future__ import annotations

import pytest

from graphcast_zero import fetch
from graphcast_zero.errors import FetchError, InputError

from ..gcs_emulator import counting_proxy, free_port
from .conftest import LAYOUTS


def chunks_read(seen: list, variable: str) -> set[str]:
    """The chunk objects of ``variable`` that were downloaded."""
    prefix = "/" + LAYOUTS["arco"].url.split("/", 3)[3] + f"/{variable}/"
    return {
        path.split("/")[-1]
        for _, path in seen
        if prefix in path and not path.endswith(("zarray", "zattrs"))
    }


def build(endpoint, folder, store="arco", **options):
    options = {"init": "2022-01-01T06", "steps": 1, "resolution": 4.0, "levels": 13, **options}
    return fetch.fetch_data(
        data_dir=folder, source="era5", endpoint=endpoint, progress=False, log=lambda _: None,
        era5=fetch.Era5Options(store=store, **options), workers=2,
    )  # fmt: skip


def test_only_the_needed_chunks_are_read(emulator, tmp_path):
    with counting_proxy(emulator) as (url, seen):
        build(url, tmp_path)
    # Frames 00, 06, 12 of 2022-01-01 are hours 6, 12, 18 of the store (from 2021-12-31T18).
    assert chunks_read(seen, "temperature") == {"6.0.0.0", "12.0.0.0", "18.0.0.0"}
    # Each frame's 6-hour precipitation: the hours T-5 … T.
    hours = {h for frame in (6, 12, 18) for h in range(frame - 5, frame + 1)}
    assert chunks_read(seen, "total_precipitation") == {f"{h}.0.0" for h in hours}
    assert chunks_read(seen, "land_sea_mask") == {"0.0.0"}


def test_a_refused_read_is_tried_again(emulator, tmp_path):
    with counting_proxy(emulator, refuse={"/temperature/12.0.0.0": 1}) as (url, seen):
        report = build(url, tmp_path)
    assert report.files[-1].path.is_file()
    assert sum(path.endswith("/temperature/12.0.0.0") for _, path in seen) == 2


def test_a_read_that_keeps_failing_leaves_nothing_behind(emulator, tmp_path):
    with counting_proxy(emulator, refuse={"/geopotential/6.0.0.0": 99}) as (url, _):
        with pytest.raises(FetchError, match="reading geopotential .* failed 3 times"):
            build(url, tmp_path)
    assert not list((tmp_path / "dataset").iterdir())  # no partial file, hidden or not


def test_an_unreachable_endpoint_is_one_line(tmp_path):
    with pytest.raises(FetchError, match="cannot reach gs://gcp-public-data-arco-era5") as caught:
        build(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert "\n" not in str(caught.value)


def test_a_store_without_a_variable(stores, tmp_path):
    import xarray as xr

    broken = tmp_path / "broken.zarr"
    xr.open_zarr(stores["wb2"]).drop_vars("specific_humidity").to_zarr(
        broken, zarr_format=2, consolidated=True
    )
    with pytest.raises(InputError, match="lacks specific_humidity"):
        build(None, tmp_path, store=str(broken))
