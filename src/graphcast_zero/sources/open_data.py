"""ECMWF's open data (the IFS real-time forecasts) as a source: what GraphCast reads from it, where
it lives, and downloading it with ECMWF's own client.

The analyses GraphCast_operational starts from are step 0 of the IFS HRES runs at 00, 06, 12 and
18 UTC, 0.25°, on pressure levels 1000 … 50 hPa (all 13 of the model's, plus 10 hPa). The
``ecmwf-opendata`` client builds each file's address
(``{url}/{YYYYMMDD}/{HH}z/ifs/0p25/{stream}/{YYYYMMDDHHMMSS}-0h-{stream}-fc.grib2``), reads the
``.index`` file beside it (one JSON line per GRIB message: param, levtype, levelist, byte offset
and length) and downloads only the byte ranges of the fields asked for. It also picks the stream
the cycle in force uses for the 06/18 UTC runs (``scda`` before IFS cycle 50r1 on 2026-05-12,
``oper`` since), so nothing here depends on it. The client and ecCodes (GRIB decoding, bundled in
the ``eccodes`` wheels) come from PyPI with the ``realtime`` extra.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from graphcast_zero.config import GRAVITY
from graphcast_zero.errors import FetchError, InputError

EXTRA = "realtime"
GRID_SPACING = 0.25  # degrees: the open data's grid (resol 0p25), the operational model's
DEFAULT_MIRROR = "ecmwf"
# The client's names for ECMWF's server and the cloud copies of it.
MIRRORS = {
    "ecmwf": "ECMWF's open-data server",
    "aws": "the AWS mirror",
    "azure": "the Azure mirror",
    "google": "the Google Cloud mirror",
}
# What each source keeps, as the client's documentation and ECMWF describe them (no figures are
# documented beside the client, so none are given).
RETENTION = (
    "ECMWF's server keeps recent days only; the cloud mirrors (--mirror aws, azure or google) "
    "keep a longer history"
)
TRIES = 3
RETRY_AFTER_S = 2.0  # the client's pause between tries (its default is 120 s)
REQUEST_TIMEOUT_S = 60.0  # the client sets none: a silent server would hang a request forever


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One open-data parameter and the official variable made of it.

    Attributes:
      name: the official variable.
      param: the open data's short name (also ecCodes' ``shortName``).
      levtype: ``sfc`` (single level) or ``pl`` (pressure levels).
      scale: the factor to the official units (geopotential height in gpm → m²/s²).
    """

    name: str
    param: str
    levtype: str
    scale: float = 1.0


SURFACE = (
    Parameter("2m_temperature", "2t", "sfc"),
    Parameter("mean_sea_level_pressure", "msl", "sfc"),
    Parameter("10m_v_component_of_wind", "10v", "sfc"),
    Parameter("10m_u_component_of_wind", "10u", "sfc"),
)
# Geopotential comes from geopotential height, which every cycle of the open data publishes.
ATMOSPHERIC = (
    Parameter("temperature", "t", "pl"),
    Parameter("geopotential", "gh", "pl", GRAVITY),
    Parameter("u_component_of_wind", "u", "pl"),
    Parameter("v_component_of_wind", "v", "pl"),
    Parameter("vertical_velocity", "w", "pl"),
    Parameter("specific_humidity", "q", "pl"),
)
STATICS = (
    Parameter("land_sea_mask", "lsm", "sfc"),
    Parameter("geopotential_at_surface", "z", "sfc"),
)


def require_client():
    """The ``ecmwf.opendata.Client`` class, once ecCodes is known to load.

    Raises:
      InputError: the ``realtime`` extra is not installed.
    """
    try:
        import eccodes  # noqa: F401  (loads the ecCodes library the wheels bundle)
        from ecmwf.opendata import Client
    except (ImportError, RuntimeError, OSError) as error:
        missing = getattr(error, "name", None) or str(error).splitlines()[0][:80]
        raise InputError(
            f"--source ecmwf-open-data needs the `{EXTRA}` extra ({missing} is missing): "
            f'pip install -e ".[{EXTRA}]"'
        ) from None
    return Client


def mirror_source(mirror: str) -> str:
    """The client's ``source``: a known mirror's name, or an http(s) URL (a local copy).

    Raises:
      InputError: anything else.
    """
    mirror = str(mirror).strip().rstrip("/")
    if mirror in MIRRORS or mirror.startswith(("http://", "https://")):
        return mirror
    raise InputError(
        f"--mirror {mirror!r} is not an open-data source: use {', '.join(MIRRORS)} or an "
        "http(s):// URL of a copy in the same layout"
    )


def describe(mirror: str) -> str:
    """The mirror in words (its address follows it in messages)."""
    return MIRRORS.get(mirror, "the open-data copy")


def _timeout_session():
    import requests

    class TimeoutSession(requests.Session):
        """A session whose requests give up after a while unless told otherwise."""

        def request(self, *args, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = REQUEST_TIMEOUT_S
            return super().request(*args, **kwargs)

    session = TimeoutSession()
    session.trust_env = True  # proxies from the environment, as every other download here
    return session


@dataclasses.dataclass
class OpenDataClient:
    """ECMWF's client for one mirror, with bounded tries and timeouts, and one-line errors.

    Attributes:
      mirror: ``ecmwf``, ``aws``, ``azure``, ``google`` or an http(s) URL.
      retry_after: seconds between the client's tries.
    """

    mirror: str = DEFAULT_MIRROR
    retry_after: float = RETRY_AFTER_S

    def __post_init__(self):
        client_class = require_client()
        self.mirror = mirror_source(self.mirror)
        try:
            self.client = client_class(
                source=self.mirror, maximum_retries=TRIES, retry_after=self.retry_after
            )
        except Exception as error:  # azure fetches a token here; anything else is a bad source
            raise self._unreachable(error) from None
        self.client.session = _timeout_session()
        self.url = self.client.url

    def _unreachable(self, error: Exception) -> FetchError:
        return FetchError(
            f"cannot reach {describe(self.mirror)} at {getattr(self, 'url', self.mirror)} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}); "
            f"offline or blocked? try another --mirror ({', '.join(MIRRORS)})"
        )

    def latest(self) -> pd.Timestamp:
        """The newest run whose step 0 the mirror holds (the client looks back two days).

        Raises:
          FetchError: the mirror does not answer, or holds no run of the last two days.
        """
        import requests

        try:
            when = self.client.latest(type="fc", step=0, param="2t")
        except requests.RequestException as error:
            raise self._unreachable(error) from None
        except ValueError:
            raise FetchError(
                f"{describe(self.mirror)} ({self.url}) holds no run of the last two days: "
                f"give an --init it has ({RETENTION}), or try another --mirror"
            ) from None
        return pd.Timestamp(when)

    def retrieve(
        self,
        when: pd.Timestamp,
        levtype: str,
        params: Sequence[str],
        target: Path,
        levels: Sequence[int] = (),
    ) -> tuple[int, str]:
        """Downloads step 0 of the run at ``when``: ``params`` of one ``levtype``.

        Returns:
          (bytes downloaded, the data file's address).

        Raises:
          InputError: the mirror does not have that run, or none of the fields.
          FetchError: the mirror does not answer, or the download stayed incomplete after
            a few tries.
        """
        import requests

        request = {
            "date": f"{when:%Y-%m-%d}", "time": int(when.hour), "type": "fc", "step": 0,
            "levtype": levtype, "param": list(params),
        }  # fmt: skip
        if levels:
            request["levelist"] = [int(level) for level in levels]
        for attempt in range(1, TRIES + 1):
            try:
                result = self.client.retrieve(request, target=str(target))
                url = result.urls[0][0] if isinstance(result.urls[0], tuple) else result.urls[0]
                return int(result.size or target.stat().st_size), str(url)
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else None
                if status == 404:
                    raise self._not_kept(when) from None
                problem = error
            except (requests.ConnectionError, requests.Timeout) as error:
                raise self._unreachable(error) from None
            except ValueError:  # the client's "Cannot find index entries matching"
                raise InputError(
                    f"the {when:%Y-%m-%dT%H} run on {describe(self.mirror)} ({self.url}) lists "
                    f"none of {', '.join(params)} ({levtype}) in its index: try another --mirror"
                ) from None
            except Exception as error:  # multiurl asserts sizes; a dropped stream raises others
                problem = error
            target.unlink(missing_ok=True)
            if attempt < TRIES:
                time.sleep(self.retry_after)
        reason = str(problem).splitlines()[0][:120] if str(problem) else ""
        raise FetchError(
            f"the download of the {when:%Y-%m-%dT%H} run's {levtype} fields from "
            f"{describe(self.mirror)} ({self.url}) stayed incomplete after {TRIES} tries "
            f"({type(problem).__name__}: {reason}); nothing was kept: run fetch-data again, or "
            "try another --mirror"
        )

    def _not_kept(self, when: pd.Timestamp) -> InputError:
        return InputError(
            f"{describe(self.mirror)} ({self.url}) does not have the {when:%Y-%m-%dT%H} UTC run: "
            f"{RETENTION}, and a run appears some hours after its time; choose another --init "
            "(or latest) or --mirror"
        )


def mirror_url(mirror: str) -> str:
    """The base address of a mirror, as the client knows it.

    Raises:
      InputError: an unknown mirror, or the ``realtime`` extra is missing.
    """
    mirror = mirror_source(mirror)
    if mirror.startswith(("http://", "https://")):
        return mirror
    require_client()
    from ecmwf.opendata.urls import URLS

    return URLS[mirror]


def probe(mirror: str = DEFAULT_MIRROR, timeout: float = 3.0):
    """Asks the mirror's base address for anything within ``timeout`` seconds: (url, answer).

    Raises:
      InputError: an unknown mirror, or the ``realtime`` extra is missing.
    """
    from graphcast_zero.remotes import probe_url

    url = mirror_url(mirror)
    return url, probe_url(url + "/", timeout=(timeout, timeout), deadline=timeout)
