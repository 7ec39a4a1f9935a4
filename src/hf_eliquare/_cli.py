"""Shared glue for the command-line entry points: user mistakes become one clear line, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import EliquareError

logger = logging.getLogger("hf_eliquare")

#: Exit status for a user-fixable problem (bad argument, bad data, offline, …).
EXIT_USER_ERROR = 2


def run_main(main: Callable[[], object]) -> None:
    """Run ``main``; an :class:`EliquareError` prints ``error: <message>`` to stderr and exits with 2."""
    try:
        main()
    except EliquareError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def setup_logging(level: int = logging.INFO) -> None:
    """Plain ``time - level - name - message`` logging for scripts, transformers' verbosity aligned."""
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=level,
    )
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
