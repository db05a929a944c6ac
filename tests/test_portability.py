"""The suite holds on other CPUs: reference comparisons are marked and rerun under another dispatch.

Reference files in tests/data/ were made on one machine; numpy's float32 trigonometry takes
CPU-specific SIMD paths, so they reproduce elsewhere only to a few float32 ulps. `.ci/run` reruns
the tests marked `reference` with numpy's AVX-512 paths switched off, which moves this machine's
numbers as another CPU would.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT

DISPATCH_SCRIPT = REPO_ROOT / "scripts" / "numpy_other_dispatch.py"


def _run(args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=env, timeout=300
    )


@pytest.mark.slow
def test_reference_marker_selects_every_comparison_with_stored_values():
    listed = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "reference"])
    selected = listed.stdout
    for test in (
        "tests/model/test_graph.py::test_edges_and_features_match_official",
        "tests/model/test_graph.py::test_mesh_coordinates_match_official",
        "tests/model/test_mesh.py::test_matches_official_mesh",
        "tests/model/test_connectivity.py::test_matches_official_fixture_connectivity",
        "tests/test_solar.py::test_reproduces_official_values_in_fixture",
        "tests/test_parity.py::test_float32_rollout_matches_official",
        "tests/test_parity_configs.py::test_float32_rollout",
    ):
        assert test in selected, test


def test_other_dispatch_switches_numpys_avx512_paths_off():
    pytest.importorskip("numpy.lib.introspect")  # numpy 2's dispatch report
    probe = (
        "import numpy.lib.introspect as i; "
        "print(i.opt_func_info(func_name='^sin$')['sin']['ff']['current'])"
    )
    disabled = _run([sys.executable, str(DISPATCH_SCRIPT)]).stdout.strip()
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled}
    path = _run([sys.executable, "-c", probe], env=env).stdout.strip()
    assert not path.startswith(("AVX512", "X86_V4")), path
    if disabled:  # this CPU has AVX-512, and float32 sine uses it unless told not to
        default = _run([sys.executable, "-c", probe]).stdout.strip()
        assert default != path
