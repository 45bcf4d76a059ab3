"""Warnings our users can do nothing about, filtered where they arise: each by its message and the module (or the
logger) that issues it, never a whole category. Importing ``l2vit`` (which every tool and every ``mm*_l2vit``
package does) installs the Python filters; ``quiet_logger`` adds the logging filter to an mmengine logger (the
runner's: ``l2vit.apis.build_runner``). ``tests/test_quiet_tools.py`` runs the tools and fails on any warning left.
"""
import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator, Optional

#: (message regex, regex of the module that warns) of each known Python warning.
KNOWN_WARNINGS = [
    # setuptools' notice on `import pkg_resources`: mmengine's is_installed (resolving `mmdet::`-style config bases)
    # imports it, then reloads it (importlib.reload): up to three times per mmpretrain.get_model. mmengine needs it,
    # which is why setuptools is pinned below 81.
    (r'pkg_resources is deprecated', r'(mmengine\.utils\.package_utils|importlib)$'),
    # mmseg's own heads build their losses with its deprecated helper.
    (r'``build_loss`` would be deprecated soon', r'mmseg\.models\.builder$'),
    # mmseg's CrossEntropyLoss on its own default, which mmseg's UperNet recipe (and so ours) keeps.
    (r'Default ``avg_non_ignore`` is False', r'mmseg\.models\.losses\.cross_entropy_loss$'),
    # mmseg's default runtime config carries its visualization hook switched off, and the hook says so.
    (r'The draw is False, it means that the hook for visualization will not take effect',
     r'mmseg\.engine\.hooks\.visualization_hook$'),
    # mmengine's visualizer drawing a predicted box or mask that reaches past the image (it is clipped).
    (r'Warning: The (bbox|polygon) is out of bounds', r'mmengine\.visualization\.visualizer$'),
]

#: Messages mmengine logs at WARNING level about itself and the libraries: its CheckpointHook (every run) asks for
#: a FileClient; mmseg's IoUMetric has no default prefix (its metrics are logged as ``mIoU``, which our tools read).
KNOWN_LOG_MESSAGES = re.compile('|'.join([
    r'"FileClient" will be deprecated in future',
    r'"HardDiskBackend" is the alias of "LocalBackend"',
    r'The prefix is not set in metric class IoUMetric\.',
]))
#: What torch's CPU allocator logs (C++, on stderr) when a block allocated before a memory profile is freed in it.
PROFILER_UNKNOWN_BLOCK = r'Memory block of unknown size was allocated before the profiling started'


def filter_known_warnings() -> None:
    """Ignore ``KNOWN_WARNINGS`` (idempotent: ``warnings.filterwarnings`` does not add a filter twice)."""
    for message, module in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=UserWarning, module=module)


class KnownLogFilter(logging.Filter):
    """Drops the WARNING records of ``KNOWN_LOG_MESSAGES``; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and KNOWN_LOG_MESSAGES.search(record.getMessage()))


def quiet_logger(logger: Optional[logging.Logger] = None) -> None:
    """Add ``KnownLogFilter`` to ``logger`` (default: mmengine's current logger), once."""
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    if not any(isinstance(f, KnownLogFilter) for f in logger.filters):
        logger.addFilter(KnownLogFilter())


@contextlib.contextmanager
def native_stderr_without(pattern: str) -> Iterator[None]:
    """Inside the block, what is written to the process's stderr (file descriptor 2: C++ logs such as torch's) is
    held back, then written out without the lines matching ``pattern``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors='replace').splitlines(keepends=True)
            sys.stderr.write(''.join(line for line in lines if not re.search(pattern, line)))
            sys.stderr.flush()
