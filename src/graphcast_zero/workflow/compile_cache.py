"""JAX's persistent compilation cache in the data folder, so a second run skips most compiling."""

from __future__ import annotations

import contextlib
from pathlib import Path


def use_compilation_cache(folder: Path) -> None:
    """Keeps compiled programs on disk, so a second run skips most of the compile time.

    Left alone when the user configured a cache (``JAX_COMPILATION_CACHE_DIR``).
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
