"""Tests for plotting: files are valid, non-blank images written atomically; coastlines drawn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from graphcast_zero import evaluation, plotting
from graphcast_zero.errors import InputError

LAT = np.linspace(-90.0, 90.0, 10)  # 20° grid with poles
LON = np.arange(0.0, 360.0, 20.0)
LEAD = np.array([6, 12, 18]) * np.timedelta64(1, "h")


def _field(shift: float = 0.0) -> xr.DataArray:
    """A smooth (batch=1, time, lat, lon) temperature whose waves travel east with time."""
    lat, lon = np.deg2rad(LAT)[:, None], np.deg2rad(LON)[None, :]
    frames = [250 + 30 * np.cos(lat) + 5 * np.sin(2 * lon - 0.5 * k + shift) for k in range(3)]
    return xr.DataArray(
        np.stack(frames)[None],
        dims=("batch", "time", "lat", "lon"),
        coords={"time": LEAD.astype("timedelta64[ns]"), "lat": LAT, "lon": LON},
        name="2m_temperature",
        attrs={"units": "K"},
    )


def _mask() -> xr.DataArray:
    """One continent between 60°E and 160°E, 50°S and 50°N: its outline crosses 0.5."""
    land = (np.abs(LAT)[:, None] < 50) & (LON[None, :] > 60) & (LON[None, :] < 160)
    return xr.DataArray(
        land.astype(np.float32), dims=("lat", "lon"), coords={"lat": LAT, "lon": LON}
    )


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


def _assert_picture(path, image_format: str) -> None:
    with Image.open(path) as image:
        assert image.format == image_format
        assert image.width > 200 and image.height > 100
    assert _pixels(path).std() > 20, "the picture is nearly blank"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def _contours(figure) -> list:
    from matplotlib.contour import ContourSet

    return [c for ax in figure.axes for c in ax.collections if isinstance(c, ContourSet)]


def test_plot_map_writes_a_png_with_three_panels(tmp_path):
    pred, target = _field().isel(time=1), _field(0.3).isel(time=1)
    path = plotting.plot_map(pred, target, tmp_path / "map.png", land_sea_mask=_mask())
    assert path == tmp_path / "map.png"
    _assert_picture(path, "PNG")
    figure = plotting.map_figure(pred, target)
    maps = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in maps] == ["prediction", "target", "prediction − target"]
    assert "+12h" in figure.get_suptitle()
    difference = maps[2].images[0]  # an evenly spaced grid is drawn as an image
    assert difference.get_cmap().name == "RdBu_r"
    assert difference.norm.vmin == -difference.norm.vmax > -np.inf  # centred on zero
    colorbars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 3 and all(ax.get_xlabel() == "K" for ax in colorbars)


def test_coastlines_come_from_the_mask(tmp_path):
    pred = _field().isel(time=0)
    assert len(_contours(plotting.map_figure(pred, pred, land_sea_mask=_mask()))) == 3
    assert _contours(plotting.map_figure(pred, pred)) == []
    with_coast = _pixels(plotting.plot_map(pred, None, tmp_path / "a.png", land_sea_mask=_mask()))
    without = _pixels(plotting.plot_map(pred, None, tmp_path / "b.png"))
    assert with_coast.shape == without.shape
    # The outline adds dark pixels along the continent's edge.
    assert (with_coast < 40).sum() > (without < 40).sum() + 50


def test_plot_map_rejects_fields_it_cannot_draw(tmp_path):
    field = _field()
    with pytest.raises(InputError, match="select one level"):
        plotting.plot_map(field, None, tmp_path / "x.png")  # three lead times left
    with pytest.raises(InputError, match="land-sea mask"):
        plotting.plot_map(field.isel(time=0), None, tmp_path / "x.png", land_sea_mask=_mask()[1:])
    with pytest.raises(InputError, match="differ in shape"):
        plotting.plot_map(field.isel(time=0), field.isel(time=0, lat=slice(1)), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("with_target", [False, True])
def test_animate_writes_one_frame_per_lead_time(tmp_path, with_target):
    target = _field(0.3) if with_target else None
    path = plotting.animate(
        _field(), tmp_path / "anim.gif", field_target=target, land_sea_mask=_mask()
    )
    _assert_picture(path, "GIF")
    with Image.open(path) as image:
        assert image.n_frames == LEAD.size
        assert image.width > (1000 if with_target else 300)
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("L"), dtype=np.float64))
    assert all(frame.std() > 20 for frame in frames)
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # the waves move between frames


def test_rmse_chart_has_a_panel_per_variable(tmp_path):
    truth = xr.Dataset(
        {
            "2m_temperature": _field(),
            "temperature": _field().expand_dims(level=[500, 850], axis=2),
        }
    )
    forecast = truth + xr.DataArray([1.0, 2.0, 3.0], dims=("time",))  # RMSE 1, 2, 3
    scores = evaluation.evaluate(forecast, truth, last_inputs=truth.isel(time=0) - 1)
    path = plotting.plot_rmse_vs_lead_time(scores, tmp_path / "rmse.png", level=850)
    _assert_picture(path, "PNG")
    figure = plotting.rmse_figure(scores, level=850)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["2m_temperature", "temperature 850 hPa"]
    for ax in panels:
        assert [line.get_label() for line in ax.get_lines()] == ["model", "persistence"]
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [6, 12, 18])
    np.testing.assert_allclose(panels[1].get_lines()[0].get_ydata(), [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="levels: 500, 850"):
        plotting.rmse_figure(scores, level=700)
    with pytest.raises(InputError, match="no scores"):
        plotting.rmse_figure(scores, variables=["geopotential"])


def test_rmse_chart_from_a_metrics_file(tmp_path):
    truth = xr.Dataset({"2m_temperature": _field()})
    scores = evaluation.evaluate(truth + 1, truth)
    saved = evaluation.read_metrics_json(evaluation.write_metrics_json(scores, tmp_path / "m.json"))
    path = plotting.plot_rmse_vs_lead_time(saved, tmp_path / "rmse.png")
    _assert_picture(path, "PNG")


def test_loss_curve(tmp_path):
    path = plotting.plot_loss_curve([15.4, 12.0, 9.1, 7.5, 6.0], tmp_path / "loss.png")
    _assert_picture(path, "PNG")
    assert plotting.loss_figure([1000.0, 10.0, 1.0]).axes[0].get_yscale() == "log"
    assert plotting.loss_figure([3.0, 2.0]).axes[0].get_yscale() == "linear"
    with pytest.raises(InputError, match="no losses"):
        plotting.plot_loss_curve([], tmp_path / "empty.png")


def test_a_failed_render_leaves_the_old_picture(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = plotting.plot_loss_curve([2.0, 1.0], tmp_path / "loss.png")
    before = path.read_bytes()

    def broken_savefig(self, target, **kwargs):
        open(target, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plotting.plot_loss_curve([5.0, 4.0, 3.0], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_matplotlib_stays_out_of_evaluation_and_pyplot_out_of_plotting(tmp_path):
    script = f"""
import sys
import graphcast_zero.evaluation
assert "matplotlib" not in sys.modules, "evaluation imported matplotlib"
import graphcast_zero.plotting as plotting
assert "matplotlib" not in sys.modules, "plotting imports matplotlib eagerly"
plotting.plot_loss_curve([2.0, 1.0], {str(tmp_path / "loss.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "plotting used pyplot"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
