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


def _config_file_to_argv(path: str) -> list[str]:
    """``key: value`` pairs of a .json/.yaml file as ``--key value`` flags (lists become several values)."""
    import json

    import yaml

    from .errors import ConfigurationError

    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ConfigurationError(f"Cannot read the config file {path!r}: {err}") from None
    if not isinstance(config, dict):
        raise ConfigurationError(f"The config file {path!r} must hold a mapping of argument names to values.")
    argv: list[str] = []
    for key, value in config.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        argv += [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in values)]
    return argv


def parse_args(dataclass_types, argv: list[str] | None = None):
    """``HfArgumentParser`` over ``dataclass_types``; a first argument ending in .json/.yaml/.yml is a config
    file whose values the remaining command-line flags override (``run.yaml --learning_rate 1e-4``)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].endswith((".json", ".yaml", ".yml")) and not argv[0].startswith("-"):
        argv = _config_file_to_argv(argv[0]) + argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)
