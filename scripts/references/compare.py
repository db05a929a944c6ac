"""Compares a regenerated reference folder with the committed one, file by file.

Structure must match exactly: the same files, keys, variables, dims, shapes, dtypes, coordinates,
configs, strings and integers (edge senders and receivers, mesh faces). Floating-point values are
compared with the tolerances of :data:`TOLERANCES`, each justified in its comment. Needs only
numpy and xarray, so it runs in the project's environment (and in CI).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import xarray as xr
from configurations import Configuration

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7: one float32 ulp at 1
BF16_ULP = 2.0**-7  # one bfloat16 ulp at 1 (8-bit significand)


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """A bound on one measure of difference: ``scale`` (max |Δ| / max |x| of the array),
    ``sigma`` (max |Δ| / σ of the variable), ``sigma_mean`` or ``relative`` (|Δ| / |x|)."""

    measure: str
    limit: float


# The committed files were made on another CPU. The same code reproduces there only to a few
# float32 ulps (numpy and XLA choose SIMD paths and fused multiply-adds per CPU); a value that
# the code computes differently moves by far more than any of these bounds.
TOLERANCES = {
    # Files copied from elsewhere (statistics, the official-small batch): the very same values.
    "copy": Tolerance("scale", 0.0),
    # Short float32 computations (parameter initialisers, the derived batches' solar radiation):
    # a few ulps of the array's largest value.
    "short": Tolerance("scale", 8 * EPS32),
    # Graph features: numpy's float32 arccos and arctan2 place mesh nodes up to 2 ulps (3e-5°)
    # apart per CPU, and the edge features divide position differences by the longest edge (down
    # to 0.04 rad): up to 1.5e-5 of the features' range, so 1e-4.
    "graph": Tolerance("scale", 1e-4),
    # float32 rollout: the last step adds the residual to the input at the variable's magnitude, so
    # its ulp (7.8e-3 Pa at 1e5 Pa: 1.6e-5 σ for mean sea-level pressure) is the floor; 1e-4 σ.
    "float32_rollout": Tolerance("sigma", 1e-4),
    # float32 gradients: rounding differences grow back through the layers, up to 5.4e-6 of an
    # array's largest |g| (45 ulps); 512 ulps.
    "float32_grads": Tolerance("scale", 512 * EPS32),
    # float32 losses: means over ~1e5 terms summed in an order XLA picks per CPU (up to 7 ulps).
    "float32_scalar": Tolerance("relative", 64 * EPS32),
    # bfloat16 is a sanity check: tests/data/README.md's bounds for another implementation
    # (max 0.15 σ, mean 2e-2 σ); a rerun of the same code stays far inside them.
    "bfloat16_rollout": Tolerance("sigma", 0.15),
    "bfloat16_rollout_mean": Tolerance("sigma_mean", 2e-2),
    # bfloat16 losses: a rounding flip moves a value by one bfloat16 ulp; allow two.
    "bfloat16_scalar": Tolerance("relative", 2 * BF16_ULP),
    # bfloat16 gradients: flips cascade through the backward pass (up to 0.021 of an array's
    # largest |g|, ~3 ulps); eight ulps.
    "bfloat16_grads": Tolerance("scale", 8 * BF16_ULP),
}
# loss.json entries that record where and how fast a run went, not what it computed.
PROVENANCE = {"stats", "timings_s", "self_consistency_max_abs_diff_over_sigma"}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One compared item: its difference under a tolerance, or a structural mismatch."""

    item: str
    measure: str
    value: float
    limit: float
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and self.value <= self.limit


def measure(kind: str, ours: np.ndarray, committed: np.ndarray) -> float:
    """The difference of two float arrays in the measure of ``TOLERANCES[kind]``."""
    difference = np.abs(ours.astype(np.float64) - committed.astype(np.float64))
    if not difference.size:
        return 0.0
    measured = TOLERANCES[kind].measure
    if measured == "scale":
        scale = float(np.abs(committed).max())
        return float(difference.max()) / scale if scale else float(difference.max())
    sigma = float(np.std(committed.astype(np.float64))) or 1.0
    return float(difference.mean() if measured == "sigma_mean" else difference.max()) / sigma


class FileComparison:
    """The findings of one file (``relative`` to its configuration's ``folder``)."""

    def __init__(self, folder: str, relative: str):
        self.folder = folder
        self.relative = relative
        self.findings: list[Finding] = []

    def problem(self, item: str, text: str) -> None:
        self.findings.append(Finding(item, "structure", 0.0, 0.0, text))

    def measured(self, item: str, value: float, kind: str) -> None:
        tolerance = TOLERANCES[kind]
        self.findings.append(Finding(item, tolerance.measure, value, tolerance.limit))

    def exact(self, item: str, ours, committed) -> None:
        """Equal values, types and (for arrays) dtypes and shapes."""
        ours_array, committed_array = np.asarray(ours), np.asarray(committed)
        if type(ours) is not type(committed) or ours_array.dtype != committed_array.dtype:
            self.problem(item, f"type {_type(ours)} instead of {_type(committed)}")
        elif ours_array.shape != committed_array.shape:
            self.problem(item, f"shape {ours_array.shape} instead of {committed_array.shape}")
        elif not np.array_equal(ours_array, committed_array):
            self.problem(item, "values differ")

    def close(self, item: str, ours: np.ndarray, committed: np.ndarray, kind: str) -> None:
        """Same dtype, shape and NaN places; the other values within ``TOLERANCES[kind]``."""
        ours, committed = np.asarray(ours), np.asarray(committed)
        if ours.dtype != committed.dtype or ours.shape != committed.shape:
            return self.exact(item, ours, committed)  # reports the dtype or shape
        missing = np.isnan(committed)
        if not np.array_equal(np.isnan(ours), missing):
            return self.problem(item, "NaN in different places")
        ours, committed = ours[~missing], committed[~missing]  # real-stats has NaN stddevs
        self.measured(item, measure(kind, ours, committed), kind)
        if kind == "bfloat16_rollout":
            self.measured(item, measure(kind + "_mean", ours, committed), kind + "_mean")

    def scalar(self, item: str, ours, committed, kind: str) -> None:
        if not isinstance(ours, float) or not isinstance(committed, float):
            return self.exact(item, ours, committed)
        self.measured(item, abs(ours - committed) / (abs(committed) or 1.0), kind)


def _type(value) -> str:
    return f"{type(value).__name__}[{np.asarray(value).dtype}]"


def compare_netcdf(check: FileComparison, ours: Path, committed: Path, kind: str) -> None:
    """Variables, dims, coordinates and global attributes exact; data within ``kind``."""
    mine, theirs = xr.load_dataset(ours), xr.load_dataset(committed)
    if set(mine.variables) != set(theirs.variables):
        return check.problem("variables", f"{sorted(mine.variables)} != {sorted(theirs.variables)}")
    if mine.attrs != theirs.attrs:
        check.problem("attributes", "global attributes differ")
    for name in theirs.coords:
        check.exact(name, mine[name].values, theirs[name].values)
    for name, variable in theirs.data_vars.items():
        if mine[name].dims != variable.dims:
            check.problem(name, f"dims {mine[name].dims} instead of {variable.dims}")
        else:
            check.close(name, mine[name].values, variable.values, kind)


def compare_npz(check: FileComparison, ours: Path, committed: Path, kind: str) -> None:
    """Keys exact; integer and string arrays exact (configs too); float arrays within ``kind``."""
    with np.load(ours) as mine, np.load(committed) as theirs:
        if set(mine.files) != set(theirs.files):
            missing, extra = (
                set(theirs.files) - set(mine.files),
                set(mine.files) - set(theirs.files),
            )
            return check.problem("keys", f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        for key in theirs.files:
            floating = np.issubdtype(theirs[key].dtype, np.floating)
            if floating and (kind != "short" or key.startswith("params:")):
                check.close(key, mine[key], theirs[key], kind)
            else:  # checkpoint configs and strings, senders, receivers, faces
                check.exact(key, mine[key], theirs[key])


def compare_json(check: FileComparison, ours, committed, path: str = "") -> None:
    """Same keys and list lengths; loss records within their precision's tolerance; rest exact."""
    if isinstance(committed, dict) and isinstance(ours, dict):
        if set(ours) != set(committed):
            return check.problem(path or "keys", f"keys {sorted(ours)} != {sorted(committed)}")
        for key, value in committed.items():
            if path or key not in PROVENANCE:
                compare_json(check, ours[key], value, f"{path}.{key}" if path else key)
    elif isinstance(committed, list) and isinstance(ours, list) and len(ours) == len(committed):
        for index, (mine, theirs) in enumerate(zip(ours, committed, strict=True)):
            compare_json(check, mine, theirs, f"{path}[{index}]")
    elif path.startswith(("train_", "eval_")):
        precision = "float32" if path.split(".")[0].endswith("_float32") else "bfloat16"
        check.scalar(path, ours, committed, f"{precision}_scalar")
    else:
        check.exact(path, ours, committed)


def _kind(configuration: Configuration, relative: str) -> str:
    """The tolerance kind of one file, from its place in the layout."""
    name = Path(relative).name
    if relative.startswith("stats/") or (
        relative.startswith("dataset/") and not configuration.recipe
    ):
        return "copy"
    if name.startswith("predictions"):
        return "float32_rollout" if "float32" in name else "bfloat16_rollout"
    if name.startswith("grads"):
        return "float32_grads" if "float32" in name else "bfloat16_grads"
    return "graph" if name.startswith("graph") else "short"  # params, derived batches


def compare_configuration(
    configuration: Configuration, ours: Path, committed: Path
) -> list[FileComparison]:
    """Every file of one configuration, regenerated (``ours``) against committed."""
    results = []
    for relative in configuration.files():
        check = FileComparison(configuration.folder, relative)
        mine = ours / configuration.folder / relative
        theirs = committed / configuration.folder / relative
        results.append(check)
        if not theirs.exists():
            check.problem("file", f"not in the committed folder {committed}")
        elif not mine.exists():
            check.problem("file", f"not regenerated in {ours}")
        elif relative.endswith(".nc"):
            compare_netcdf(check, mine, theirs, _kind(configuration, relative))
        elif relative.endswith(".npz"):
            compare_npz(check, mine, theirs, _kind(configuration, relative))
        else:
            compare_json(check, json.loads(mine.read_text()), json.loads(theirs.read_text()))
    return results


def _short(text: str, width: int) -> str:
    """``text`` cut to ``width`` from the left, keeping a leading folder (``dataset/…tail``)."""
    if len(text) <= width:
        return text
    head = text.split("/", 1)[0] + "/" if "/" in text else ""
    return head + "…" + text[-(width - len(head) - 1) :]


def report(results: list[FileComparison]) -> tuple[str, bool]:
    """A table of each file's largest difference (relative to its limit) and every failure.

    Returns:
      The text, and whether every file matched.
    """
    lines, failures, folder = [], [], None
    header = f"{'largest difference':>36} {'measure':>10} {'value':>9} {'limit':>9}"
    for check in results:
        if check.folder != folder:
            folder = check.folder
            lines.append(f"{folder + '/':34}{header}")
        failures += [(check, f) for f in check.findings if not f.ok]
        measured = [f for f in check.findings if not f.problem]
        name = _short(check.relative, 32)
        if not measured:
            lines.append(f"  {name:32} {'(exact checks only)':>36}")
            continue
        worst = max(measured, key=lambda f: f.value / f.limit if f.limit else float(f.value > 0))
        item = _short(worst.item, 36) if worst.value else "(identical values)"
        lines.append(
            f"  {name:32} {item:>36} {worst.measure:>10} {worst.value:9.2g} {worst.limit:9.2g}"
        )
    for check, failure in failures:
        detail = failure.problem or f"{failure.measure} {failure.value:.3g} > {failure.limit:.3g}"
        lines.append(f"FAIL {check.folder}/{check.relative}: {failure.item}: {detail}")
    return "\n".join(lines), not failures
