"""The command-line boundary every stage shares: help format, argument types, logging, and the
one-line error rule (`<stage>: error: ...`; exit 2 for bad input, 1 for a failed parity check)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from common.errors import ParityError, UserError

T = TypeVar("T")
EXIT_CODES = {UserError: 2, ParityError: 1}  # anything else is a bug and keeps its traceback


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except None and off switches: those options say what they default to."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def parser(prog: str, description: str, groups: dict | None = None) -> argparse.ArgumentParser:
    """A stage's parser: `prog` named (or messages begin with __main__.py), defaults shown, and
    `groups` added: {title, (title, description) or None for ungrouped: {flag: keywords}}."""
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    for title, options in (groups or {}).items():
        heading = (title,) if isinstance(title, str) else title
        group = p if title is None else p.add_argument_group(*heading)
        for flag, keywords in options.items():
            group.add_argument(flag, **keywords)
    return p


def positive_int(text: str) -> int:
    """A whole number of at least 1; argparse turns the error into a usage line and exit 2."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def number(text: str) -> float:
    """Any float; argparse turns the error into a usage line and exit 2."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {text}")
    return value


def setup_logging(*ours: str, quiet: bool = False) -> None:
    """Our loggers at INFO (WARNING when quiet), libraries' only at WARNING, all on stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    for name in ours:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)


def run_stage(stage: str, call: Callable[[], T]) -> tuple[int, T | None]:
    """`(0, call())`, or on a UserError / ParityError one line `<stage>: error: ...` on stderr
    and `(2 or 1, None)`."""
    try:
        return 0, call()
    except tuple(EXIT_CODES) as e:
        print(f"{stage}: error: {e}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES.items() if isinstance(e, kind)), None


@dataclass(frozen=True)  # equal patterns, equal filters: logging adds each filter once
class _Drop:
    patterns: tuple[str, ...]

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(re.match(p, record.getMessage()) for p in self.patterns)


def hide_log_messages(logger: str, *patterns: str) -> None:
    """Drop a library's log records whose message matches a pattern (from its start). Only for
    known-harmless notes, each call saying why; the library imports nothing until it logs."""
    logging.getLogger(logger).addFilter(_Drop(patterns))


def hide_warning(pattern: str) -> None:
    """Ignore a Python warning whose message matches `pattern` (known harmless: say why)."""
    warnings.filterwarnings("ignore", message=pattern)
