"""Decoding open-data GRIB2 messages: coordinates from the grid description, values in order,
and a file cut short as a one-line error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphcast_zero.errors import InputError
from graphcast_zero.sources.open_data_grib import read_fields

from ..open_data_server import encode

RUN = pd.Timestamp("2026-12-01T06")


def test_a_message_on_the_open_data_grid(tmp_path):
    lat, lon = np.linspace(90, -90, 19), np.arange(-180, 180, 10.0)  # [19], [36]
    values = lat[:, None] * 1000 + lon[None, :]  # each point names itself
    path = tmp_path / "run.grib2"
    path.write_bytes(
        encode("gh", 500, RUN, lat, lon, values) + encode("2t", None, RUN, lat, lon, -values)
    )
    height, temperature = read_fields(path)
    assert (height.param, height.levtype, height.level) == ("gh", "pl", 500)
    assert (temperature.param, temperature.levtype, temperature.level) == ("2t", "sfc", None)
    assert height.run == RUN and height.step == 0
    np.testing.assert_array_equal(height.grid.lat, lat)
    np.testing.assert_array_equal(height.grid.lon, np.mod(lon, 360))  # -180 … 170 as 180 … 170
    np.testing.assert_array_equal(height.values, values)  # small integers: exact in float32
    np.testing.assert_array_equal(temperature.values, -values)
    assert height.grid.same_as(temperature.grid)
    assert height.grid.describe() == "36×19 grid from (90°N, 180°E) to (-90°N, 170°E)"


def test_a_file_cut_short_names_itself(tmp_path):
    lat, lon = np.linspace(90, -90, 19), np.arange(0, 360, 10.0)
    message = encode("t", 850, RUN, lat, lon, np.zeros((19, 36)))
    path = tmp_path / "cut.grib2"
    path.write_bytes(message + message[: len(message) // 2])
    fields = read_fields(path)
    assert next(fields).param == "t"
    with pytest.raises(InputError, match=r"^cut.grib2 is damaged \(.*cut short.*fetch-data again"):
        next(fields)
