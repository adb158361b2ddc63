"""User-facing errors.

Every mistake a user can make (bad config, missing file, corrupt record, too few
points) is raised as :class:`ScalingError`. Entry points catch it and print one
line that names the cause, then exit with status 2, instead of a deep traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

USER_ERROR_EXIT = 2


class ScalingError(Exception):
    """An error caused by the user's input, reported as one line."""


def report_user_errors(func: F) -> F:
    """Wrap a CLI entry point: a ScalingError becomes one stderr line and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except ScalingError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]
