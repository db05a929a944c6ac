"""Prints the NPY_DISABLE_CPU_FEATURES value that moves numpy off this CPU's AVX-512 code paths.

The reference files in tests/data/ were made on one CPU; numpy's float32 trigonometry takes
CPU-specific SIMD paths, so those references reproduce elsewhere only to a few float32 ulps.
`.ci/run` runs the reference-comparison tests (`pytest -m reference`) a second time with this
value, so a tolerance that only holds on the developer's own CPU fails there too. Prints nothing
when the CPU has no AVX-512 (numpy's next path down, baseline SSE, also changes which mesh edge a
grid point on a tie is given, a structural difference no x86-64-v3 machine shows).
"""

from __future__ import annotations

try:  # numpy 2
    from numpy._core._multiarray_umath import __cpu_features__
except ImportError:  # numpy 1.x
    from numpy.core._multiarray_umath import __cpu_features__


def avx512_features() -> list[str]:
    """The AVX-512 features (and the x86-64-v4 group) numpy found on this CPU."""
    return [
        name
        for name, found in __cpu_features__.items()
        if found and (name.startswith("AVX512") or name == "X86_V4")
    ]


if __name__ == "__main__":
    print(" ".join(avx512_features()))
