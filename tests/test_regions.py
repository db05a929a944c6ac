"""--region: parsing, and cutting a field to the box across the 0° and 180° meridians."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from graphcast_zero.errors import InputError
from graphcast_zero.regions import Region, cut, parse_region


def globe(resolution: float = 10.0) -> xr.DataArray:
    lat = np.linspace(-90, 90, round(180 / resolution) + 1)
    lon = np.arange(round(360 / resolution)) * resolution
    values = lat[:, None] * 1000 + lon[None, :]  # each point names itself
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})


def test_parse_region():
    assert parse_region("35,72,-25,45") == Region(35, 72, -25, 45)
    assert parse_region(" 35, 72, 170, 240 ") == Region(35, 72, 170, 240)
    assert parse_region(None) is None and parse_region("") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("35,72,-25", "is not four numbers"),
        ("a,b,c,d", "is not four numbers"),
        ("35,72,-25,nan", "is not four numbers"),
        ("72,35,-25,45", "needs -90 ≤ lat0 < lat1 ≤ 90"),
        ("-95,35,-25,45", "needs -90 ≤ lat0 < lat1 ≤ 90"),
        ("35,72,45,-25", "needs -180 ≤ lon0 < lon1 ≤ 360"),
        ("35,72,-200,45", "needs -180 ≤ lon0 < lon1 ≤ 360"),
        ("35,72,-100,300", "needs -180 ≤ lon0 < lon1 ≤ 360, at most 360° apart"),
    ],
)
def test_bad_regions_are_one_line_errors(text, problem):
    with pytest.raises(InputError, match=f"--region '{text}' {problem}.*e.g. 35,72,-25,45"):
        parse_region(text)


def test_cut_across_greenwich_keeps_longitudes_continuous():
    zoomed = cut(globe(), parse_region("30,60,-20,20"))
    assert zoomed.lat.values.tolist() == [30, 40, 50, 60]
    assert zoomed.lon.values.tolist() == [-20, -10, 0, 10, 20]
    # The values at -20 and -10 are those of 340 and 350.
    assert zoomed.sel(lat=40).values.tolist() == [40340, 40350, 40000, 40010, 40020]


def test_cut_across_the_date_line_in_0_to_360():
    zoomed = cut(globe(), parse_region("-10,10,170,200"))
    assert zoomed.lon.values.tolist() == [170, 180, 190, 200]
    assert zoomed.sel(lat=0).values.tolist() == [170, 180, 190, 200]


def test_cut_of_a_stack_of_fields_and_nothing_without_a_region():
    stack = globe().expand_dims(time=3)
    assert cut(stack, parse_region("0,20,0,20")).shape == (3, 3, 3)
    assert cut(stack, None) is stack


def test_a_region_smaller_than_the_grid_spacing():
    with pytest.raises(InputError, match="holds 1 grid point\\(s\\) along longitude on this grid"):
        cut(globe(), parse_region("0,40,1,12"))
