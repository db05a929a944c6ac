"""Pictures of forecasts: maps, animations over lead times, error and loss charts.

The only module that imports matplotlib, and only inside its functions, so importing the package
stays light. Figures are built with matplotlib's object API (``Figure``, no pyplot): they render
through Agg without changing the backend a notebook has chosen, and a notebook can still show
the ``*_figure`` results. Coastlines are the 0.5 contour of the dataset's land-sea mask, so no
map data is downloaded. Every writer renders beside its target and renames into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import xarray as xr

from graphcast_zero.atomic import atomic_path
from graphcast_zero.errors import InputError
from graphcast_zero.evaluation import Evaluation

FIELD_CMAP = "viridis"
DIFFERENCE_CMAP = "RdBu_r"
COAST_COLOR = "black"


def map_figure(
    field_pred: xr.DataArray,
    field_target: Optional[xr.DataArray] = None,
    title: Optional[str] = None,
    land_sea_mask: Optional[xr.DataArray] = None,
):
    """Prediction | target | difference maps (or the prediction alone) as a matplotlib Figure.

    Args:
      field_pred: the predicted field on (lat, lon); other dims must have size 1.
      field_target: the true field on the same grid, or None for a single panel.
      title: the figure's title, by default the field's name.
      land_sea_mask: land fraction on the same grid; its 0.5 contour is drawn as coastlines.
    """
    panels = _MapPanels(field_pred, field_target, land_sea_mask, title, animated=False)
    panels.show(0)
    return panels.figure


def plot_map(
    field_pred: xr.DataArray,
    field_target: Optional[xr.DataArray],
    path,
    title: Optional[str] = None,
    land_sea_mask: Optional[xr.DataArray] = None,
    dpi: int = 100,
) -> Path:
    """Writes the maps of :func:`map_figure` to an image file (PNG by default); returns the path."""
    return _save(map_figure(field_pred, field_target, title, land_sea_mask), path, dpi)


def animate(
    field_pred_over_time: xr.DataArray,
    path_gif,
    field_target: Optional[xr.DataArray] = None,
    land_sea_mask: Optional[xr.DataArray] = None,
    title: Optional[str] = None,
    fps: float = 2.0,
    dpi: int = 72,
) -> Path:
    """Writes a GIF with one frame per lead time; returns the path.

    Args:
      field_pred_over_time: the predicted field on (time, lat, lon); other dims of size 1.
      path_gif: where to write the animation.
      field_target: the true field on the same dims, adding target and difference panels.
      land_sea_mask: land fraction on the (lat, lon) grid, drawn as coastlines.
      title: the title before each frame's lead time, by default the field's name.
      fps: frames per second.
      dpi: resolution of each frame.
    """
    from matplotlib.animation import PillowWriter

    panels = _MapPanels(field_pred_over_time, field_target, land_sea_mask, title, animated=True)
    if "time" not in panels.pred.dims:
        raise InputError(f"{panels.title}: an animation needs a time dim of lead times")
    panels.show(0)
    panels.figure.draw_without_rendering()  # solve the layout once; frames only change data
    panels.figure.set_layout_engine("none")
    writer = PillowWriter(fps=fps)
    with atomic_path(path_gif) as temporary:
        with writer.saving(panels.figure, str(temporary), dpi):
            for index in range(panels.num_frames):
                panels.show(index)
                writer.grab_frame()
    return Path(path_gif)


def rmse_figure(metrics: Evaluation, variables: Optional[Sequence[str]] = None, level: int = 500):
    """RMSE against lead time, model and persistence, one panel per variable, as a Figure.

    Args:
      metrics: scores from :func:`graphcast_zero.evaluation.evaluate` or ``read_metrics_json``.
      variables: which variables, by default every scored one.
      level: the pressure level (hPa) shown for atmospheric variables.
    """
    from matplotlib.figure import Figure

    names = list(variables or metrics.variables)
    unknown = [name for name in names if name not in metrics.rmse]
    if unknown or not names:
        raise InputError(
            f"no scores for {unknown or names}; scored: {', '.join(metrics.variables)}"
        )
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        for scores, label, style in (
            (metrics.rmse, "model", "o-"),
            (metrics.persistence_rmse, "persistence", "s--"),
        ):
            if scores is not None and name in scores:
                hours, values = _at_level(scores[name], level, name)
                ax.plot(hours, values, style, label=label)
                if hours.size <= 12:
                    ax.set_xticks(hours)
        suffix = f" {level} hPa" if "level" in metrics.rmse[name].dims else ""
        ax.set(title=f"{name}{suffix}", xlabel="lead time (h)", ylabel="RMSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return figure


def plot_rmse_vs_lead_time(
    metrics: Evaluation, path, variables: Optional[Sequence[str]] = None, level: int = 500
) -> Path:
    """Writes the chart of :func:`rmse_figure` to an image file; returns the path."""
    return _save(rmse_figure(metrics, variables, level), path, dpi=100)


def loss_figure(losses: Sequence[float], title: str = "training loss"):
    """Training loss per iteration as a Figure (log scale when it spans over two decades)."""
    from matplotlib.figure import Figure

    values = np.asarray(losses, dtype=np.float64).ravel()  # [num_iterations]
    if values.size == 0:
        raise InputError("no losses to plot: run at least one training iteration")
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(np.arange(1, values.size + 1), values, "o-" if values.size < 50 else "-")
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    ax.set(title=title, xlabel="iteration", ylabel="loss")
    ax.grid(alpha=0.3)
    return figure


def plot_loss_curve(losses: Sequence[float], path, title: str = "training loss") -> Path:
    """Writes the chart of :func:`loss_figure` to an image file; returns the path."""
    return _save(loss_figure(losses, title), path, dpi=100)


class _MapPanels:
    """A figure of map panels whose data can be switched from one lead time to the next."""

    def __init__(self, field_pred, field_target, land_sea_mask, title, animated: bool):
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        self.pred = _on_grid(field_pred, "prediction", keep_time=animated)
        self.target = None
        if field_target is not None:
            self.target = _on_grid(field_target, "target", keep_time=animated)
            if self.target.shape != self.pred.shape:
                raise InputError(
                    f"target {dict(self.target.sizes)} and prediction "
                    f"{dict(self.pred.sizes)} differ in shape; select the same grid"
                )
        self.num_frames = self.pred.sizes.get("time", 1)
        self.title = title or _default_title(self.pred)
        num_panels = 1 if self.target is None else 3
        self.figure = Figure(figsize=(5.0 * num_panels, 3.3), layout="constrained")
        self.axes = self.figure.subplots(1, num_panels, squeeze=False)[0]
        lon, lat = self.pred.lon.values, self.pred.lat.values
        shown = [self.pred] if self.target is None else [self.pred, self.target]
        low, high = _limits(*shown)
        units = field_pred.attrs.get("units", "")
        self.artists = []
        labels = ("prediction", "target", "prediction − target")
        for index, ax in enumerate(self.axes):
            cmap, limits = (
                (FIELD_CMAP, (low, high)) if index < 2 else (DIFFERENCE_CMAP, self._spread())
            )
            artist = _draw_field(ax, lon, lat, cmap, limits)
            bar = self.figure.colorbar(artist, ax=ax, orientation="horizontal", shrink=0.8)
            bar.set_label(units)
            bar.ax.xaxis.set_major_locator(MaxNLocator(5))  # room for long tick labels
            ax.set(
                title=labels[index], xlabel="longitude (°E)", ylabel="latitude (°N)", aspect="equal"
            )
            if land_sea_mask is not None:
                _draw_coastlines(ax, land_sea_mask, self.pred)
            ax.set(xlim=_extent(lon), ylim=np.clip(_extent(lat), -90, 90))
            self.artists.append(artist)

    def _spread(self) -> tuple[float, float]:
        largest = float(np.nanmax(np.abs(self.pred.values - self.target.values)))
        largest = largest if np.isfinite(largest) and largest > 0 else 1.0
        return -largest, largest  # symmetric limits centre the diverging colormap on 0

    def show(self, index: int) -> None:
        pred = self._frame(self.pred, index)
        values = [pred] if self.target is None else [pred, self._frame(self.target, index)]
        if self.target is not None:
            values.append(values[0] - values[1])
        for artist, value in zip(self.artists, values, strict=True):
            if hasattr(artist, "set_data"):
                artist.set_data(value)  # an image
            else:
                artist.set_array(value)  # a mesh
        time = self.pred.time.values[index] if "time" in self.pred.dims else None
        if time is None and "time" in self.pred.coords and self.pred.time.ndim == 0:
            time = self.pred.time.values  # a single lead time selected from a forecast
        lead = ""
        if time is not None and np.issubdtype(np.asarray(time).dtype, np.timedelta64):
            lead = f"  lead time +{time / np.timedelta64(1, 'h'):g}h"
        self.figure.suptitle(f"{self.title}{lead}")

    @staticmethod
    def _frame(field: xr.DataArray, index: int) -> np.ndarray:
        frame = field.isel(time=index) if "time" in field.dims else field
        return frame.values  # [num_lat, num_lon]


def _draw_field(ax, lon: np.ndarray, lat: np.ndarray, cmap: str, limits: tuple[float, float]):
    """An empty image of the grid: a raster when evenly spaced (fast at 0.25°), else a mesh."""
    blank = np.zeros((lat.size, lon.size))  # [num_lat, num_lon]
    if _evenly_spaced(lon) and _evenly_spaced(lat):
        origin = "lower" if lat.size < 2 or lat[1] > lat[0] else "upper"
        extent = (*_extent(lon), *_extent(lat))
        return ax.imshow(blank, cmap=cmap, vmin=limits[0], vmax=limits[1], extent=extent,
                         origin=origin, aspect="equal")  # fmt: skip
    return ax.pcolormesh(lon, lat, blank, cmap=cmap, vmin=limits[0], vmax=limits[1],
                         shading="nearest")  # fmt: skip


def _evenly_spaced(values: np.ndarray) -> bool:
    steps = np.diff(values)
    return values.size < 2 or bool(np.allclose(steps, steps[0], rtol=1e-4) and steps[0] != 0)


def _on_grid(field: xr.DataArray, what: str, keep_time: bool = False) -> xr.DataArray:
    """The field with size-1 dims dropped, ordered ([time,] lat, lon); checks nothing else is left."""
    if not isinstance(field, xr.DataArray):
        raise InputError(f"the {what} must be an xarray DataArray, got {type(field).__name__}")
    wanted = ("time", "lat", "lon") if keep_time else ("lat", "lon")
    field = field.squeeze(
        [dim for dim in field.dims if dim not in wanted and field.sizes[dim] == 1]
    )
    if not {"lat", "lon"} <= set(field.dims) or not set(field.dims) <= set(wanted):
        raise InputError(
            f"{field.name or what}: cannot map dims {dict(field.sizes)}; select one "
            "level and batch so that only (time,) lat, lon remain"
        )
    field = field.transpose(*[dim for dim in wanted if dim in field.dims])
    for dim in ("lat", "lon"):
        if dim not in field.coords:
            field = field.assign_coords({dim: np.arange(field.sizes[dim])})
    return field


def _default_title(field: xr.DataArray) -> str:
    """The field's name and, when one level was selected, that level."""
    title = str(field.name or "")
    if "level" in field.coords and field.level.ndim == 0:
        title += f" {field.level.values:g} hPa"
    return title


def _limits(*fields: xr.DataArray) -> tuple[float, float]:
    """Shared colour limits over all frames, so colours mean the same in every panel and frame."""
    low = min(float(np.nanmin(field.values)) for field in fields)
    high = max(float(np.nanmax(field.values)) for field in fields)
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0.0, 1.0
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def _draw_coastlines(ax, land_sea_mask: xr.DataArray, field: xr.DataArray) -> None:
    """Draws the 0.5 contour of the land fraction, closing the seam at 360° on a global grid."""
    mask = _on_grid(land_sea_mask, "land-sea mask")
    if mask.shape != (field.sizes["lat"], field.sizes["lon"]):
        raise InputError(
            f"land-sea mask {dict(mask.sizes)} does not match the field's grid "
            f"(lat {field.sizes['lat']}, lon {field.sizes['lon']})"
        )
    lon, lat, values = field.lon.values, field.lat.values, mask.values  # [lon], [lat], [lat, lon]
    spacing = np.diff(lon)
    if lon.size > 1 and np.allclose(spacing, spacing[0]) and np.isclose(spacing[0] * lon.size, 360):
        lon = np.append(lon, lon[0] + 360)
        values = np.concatenate([values, values[:, :1]], axis=1)
    if np.nanmin(values) < 0.5 < np.nanmax(values):
        ax.contour(lon, lat, values, levels=[0.5], colors=COAST_COLOR, linewidths=0.8)


def _extent(centres: np.ndarray) -> tuple[float, float]:
    """The outer edges of cells centred on ``centres``, half a spacing beyond the end points."""
    low, high = float(np.min(centres)), float(np.max(centres))
    half = (high - low) / (centres.size - 1) / 2 if centres.size > 1 else 0.5
    return low - half, high + half


def _at_level(scores: xr.DataArray, level: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if "level" in scores.dims:
        if level not in scores.level.values:
            raise InputError(
                f"{name} has no scores at {level} hPa; levels: "
                f"{', '.join(str(int(v)) for v in scores.level.values)}"
            )
        scores = scores.sel(level=level)
    hours = scores.time.values / np.timedelta64(1, "h")  # [num_lead]
    return hours, scores.values


def _save(figure, path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    return path
