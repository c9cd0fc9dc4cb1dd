"""Command-line pieces the project's commands share (``stream.py``, ``python -m realtime.batch``,
``python -m export``): argparse types for positive numbers, a parser whose errors are one line, and the
error reporting around a command's work."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping

EXIT_BAD_INPUT = 2


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (``error: ... (see PROG --help)``) with exit code 2,
    instead of the whole usage text followed by the message."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


@contextlib.contextmanager
def flags_for_options(flags: Mapping[str, str]) -> Iterator[None]:
    """Options built inside the block that reject a field named in ``flags`` (field → the command's flag)
    have their message name the flag: ``OptionError("fps", "must be ...")`` becomes ``--fps must be ...``.
    The options raise their own messages; the command that knows its flags translates them."""
    from realtime.core.errors import OptionError

    try:
        yield
    except OptionError as error:
        if error.option not in flags:
            raise
        raise OptionError(flags[error.option], error.problem) from None


def run_reporting_errors(work: Callable[[], int]) -> int:
    """Run a command's ``work``: bad input (:class:`realtime.core.errors.UserInputError`) becomes one
    ``error:`` line and exit code 2; any other exception is a bug, reported on one line with exit code 1
    (``MICROEXPR_DEBUG=1`` lets it raise, with its traceback)."""
    from realtime.core.errors import UserInputError

    try:
        return work()
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug, not the user's fault: one line unless asked for the traceback
        if os.environ.get("MICROEXPR_DEBUG"):
            raise
        print(
            f"error: unexpected {type(error).__name__}: {error} (set MICROEXPR_DEBUG=1 for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return 1
