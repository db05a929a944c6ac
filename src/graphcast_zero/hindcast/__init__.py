"""Hindcast campaigns: many forecasts, one store, on Dask distributed.

``invoke hindcast`` forecasts every initialisation of a date range from an ERA5 store (or any
dataset the :mod:`graphcast_zero.sources` seam opens) and writes them all into one Zarr store in
WeatherBench2's forecast layout, with scores as it goes. By module:

- :mod:`~graphcast_zero.hindcast.campaign`: the options and the resolved campaign;
- :mod:`~graphcast_zero.hindcast.source`: the windows of initial conditions and truth;
- :mod:`~graphcast_zero.hindcast.store`: the Zarr store, one region per forecast;
- :mod:`~graphcast_zero.hindcast.lock`: one campaign at a time per store;
- :mod:`~graphcast_zero.hindcast.climatology`: the climatology ACC is measured against;
- :mod:`~graphcast_zero.hindcast.scores`: each forecast's scores and the campaign's;
- :mod:`~graphcast_zero.hindcast.worker`: the tasks a Dask worker runs;
- :mod:`~graphcast_zero.hindcast.engine`: the cluster and the task graph;
- :mod:`~graphcast_zero.hindcast.reports`: the report files beside the store;
- :mod:`~graphcast_zero.hindcast.run`: ``run_hindcast``, the whole campaign.
"""

from graphcast_zero.hindcast.campaign import HindcastOptions
from graphcast_zero.hindcast.run import HindcastResult, run_hindcast

__all__ = ["HindcastOptions", "HindcastResult", "run_hindcast"]
