"""User-facing errors.

Every mistake a user can make (bad config, missing file, corrupt record, too few
points) is raised as :class:`ScalingError`. Entry points catch it and print one
line that names the cause, then exit with status 2, instead of a deep traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

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


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``error:`` line and exit 2, like every other user error.

    argparse's own ``error`` prints the whole usage block first, which buries the cause; the usage is one
    ``--help`` away and the line says so. Subparsers inherit the class (argparse's ``parser_class`` default).
    """

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT)
