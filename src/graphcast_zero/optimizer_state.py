"""The optimiser state on disk, so a resumed training run continues its moments and count.

The state's leaves are stored in tree order with the iteration count (``.npz``, no pickle); the
tree's structure comes back from the optimiser that reads it. This module sits at the edge, beside
the workflow: the training loop itself (:mod:`graphcast_zero.train_loop`) never opens files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from graphcast_zero.atomic import atomic_path


def save_optimizer_state(opt_state, iterations: int, path: Path) -> Path:
    """Writes the optimiser state's leaves and the iteration count (``.npz``, no pickle)."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(opt_state)]
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                iterations=np.int64(iterations),
                **{f"leaf_{i}": v for i, v in enumerate(leaves)},
            )
    return path


def load_optimizer_state(path: Path, template) -> tuple[Any, int]:
    """Restores a state saved by :func:`save_optimizer_state` into ``template``'s structure.

    Returns ``(template, 0)`` when there is no such file or it does not fit the template (a
    different optimiser or model): training then resumes with fresh moments.
    """
    leaves, treedef = jax.tree.flatten(template)
    if not path.is_file():
        return template, 0
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = [archive[f"leaf_{i}"] for i in range(len(leaves))]
            iterations = int(archive["iterations"])
    except (OSError, KeyError, ValueError):
        return template, 0
    if any(np.shape(a) != np.shape(b) for a, b in zip(saved, leaves, strict=True)):
        return template, 0
    return jax.tree.unflatten(treedef, saved), iterations
