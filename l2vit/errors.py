"""The project's error types and the tools' error exit, importable from the model code and the tools alike (no
dependencies)."""
import contextlib
import sys
from typing import Iterator, NoReturn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and how to fix it."""


class ToolError(ValueError):
    """A problem with what a tool was asked to do (a config, a file, an option) that the user must fix; the message
    says what is wrong and how. ``l2vit.apis`` raises it; the command-line tools turn it into their error exit."""


class RunStopped(RuntimeError):
    """A training run stopped to protect what it has produced (a full disk, a non-finite loss, a work dir another
    run is using); the message says what happened, that the checkpoints already saved are intact, and what to do."""


def error_message(message: str) -> int:
    """Print ``error: <message>`` on stderr and return the tools' error exit code, 2."""
    print(f'error: {message}', file=sys.stderr)
    return 2


def fail(message: str) -> NoReturn:
    """End a command-line tool with ``error: <message>`` on stderr and exit code 2 (instead of a traceback): the one
    error exit every script under ``tools/`` uses, as docs/reliability.md promises."""
    raise SystemExit(error_message(message))


@contextlib.contextmanager
def error_exit() -> Iterator[None]:
    """Inside a tool's ``main``: a ``ToolError``, ``CheckpointError`` or ``RunStopped`` ends the tool through
    ``fail``."""
    try:
        yield
    except (ToolError, CheckpointError, RunStopped) as err:
        fail(str(err))


class DataError(ToolError):
    """Data that would train wrong, or a data file that broke during a run (raised by ``l2vit.hooks.DataCheckHook``
    and by the pipelines it wraps); the message names the files and the fix."""
