"""The project's error types and the tools' error exit, importable from the model code and the tools alike (no
dependencies)."""
import sys
from typing import NoReturn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and how to fix it."""


def fail(message: str) -> NoReturn:
    """End a command-line tool with ``error: <message>`` on stderr and exit code 2 (instead of a traceback): the one
    error exit every script under ``tools/`` uses, as docs/reliability.md promises."""
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(2)
