"""The tasks' options as the workflow reads them: checked values and the message sink.

Values come from invoke as text or numbers; each check turns a bad value into a one-line
:class:`~graphcast_zero.errors.InputError` that names the option.
"""

from __future__ import annotations

from collections.abc import Callable

from graphcast_zero.errors import InputError

Log = Callable[[str], None]  # where the workflow's messages go (print by default)


def precision_option(precision: str) -> str:
    """``--precision`` resolved for this machine (``auto``: bfloat16 on accelerators, float32 on
    CPUs); an unknown name is an InputError."""
    from graphcast_zero.predictor import resolve_precision

    try:
        return resolve_precision(precision)
    except ValueError as error:
        raise InputError(f"--{error}") from None


def positive_number(value, option: str) -> float:
    """``value`` as a float greater than 0 (invoke may pass text); else an InputError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise InputError(f"{option} must be a positive number, not {value!r}")
    return number
