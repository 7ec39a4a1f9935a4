"""The command line: one argument rule and one way to fail for every command.

Every command (``hf-eliquare distill|vocab|finetune|eval-table|card|publish|export``, the scripts in
``examples/``, ``python -m hf_eliquare.vocab`` and ``python -m hf_eliquare.export``) parses its dataclasses
with :func:`parse_args`: flags, or a first argument that is a .json/.yaml file whose values later flags
override. A user mistake — a misspelled flag, a bad value, a file that cannot be used — ends as one line
``error: <problem>. <fix>`` on stderr and exit status 2 (:func:`run_command`), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import ConfigurationError, EliquareError

logger = logging.getLogger("hf_eliquare")

#: Exit status for a user-fixable problem (bad argument, bad data, offline, …).
EXIT_USER_ERROR = 2
CONFIG_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def run_main(main: Callable[[], object]) -> None:
    """Run ``main``; an :class:`EliquareError` prints ``error: <message>`` to stderr and exits with 2."""
    try:
        main()
    except EliquareError as err:
        message = " ".join(str(err).split("\n"))
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        where = f" while writing {err.filename!r}" if err.filename else ""
        print(
            f"error: The disk is full{where} ({err.strerror}). Nothing half-written was kept; free some space "
            "(or choose an --output_dir on another disk) and run the same command again.",
            file=sys.stderr,
        )
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def run_command(main: Callable[..., object], argv: Sequence[str] | None = None) -> None:
    """What every entry point runs: ``main(argv)`` under :func:`run_main`."""
    run_main(lambda: main(None if argv is None else list(argv)))


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


def config_file_to_argv(path: str) -> list[str]:
    """``key: value`` pairs of a .json/.yaml file as ``--key value`` flags (lists become several values)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
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


def _parser(dataclass_types, prog: str | None):
    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        """argparse's own errors (invalid choice, missing value) become :class:`ConfigurationError`."""

        def error(self, message):  # noqa: D401 (argparse API)
            raise ConfigurationError(f"{message}. See `{self.prog} --help` for the accepted flags.")

    # allow_abbrev=False: a misspelled or shortened flag (--learning_rat) is an error, never a silent guess.
    return Parser(dataclass_types, prog=prog, allow_abbrev=False)


def parse_args(dataclass_types, argv: Sequence[str] | None = None, prog: str | None = None):
    """``HfArgumentParser`` over ``dataclass_types``; a first argument ending in .json/.yaml/.yml is a config
    file whose values the remaining command-line flags override (``run.yaml --learning_rate 1e-4``).

    Every problem — an unknown or misspelled flag, a bad value, a value the dataclasses refuse in
    ``__post_init__`` (including TrainingArguments' own checks) — raises :class:`ConfigurationError`.
    """
    parser = _parser(dataclass_types, prog)
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv and argv[0].endswith(CONFIG_FILE_SUFFIXES) and not argv[0].startswith("-"):
        argv = config_file_to_argv(argv[0]) + argv[1:]
    try:
        namespace, unknown = parser.parse_known_args(args=argv)
    except argparse.ArgumentError as err:
        raise ConfigurationError(f"{err}. See `{parser.prog} --help`.") from None
    if unknown:
        flags = [a for a in unknown if a.startswith("-")] or unknown
        raise ConfigurationError(
            f"Unknown argument(s) {' '.join(flags)}. Check the spelling; `{parser.prog} --help` lists the flags."
        )
    values = vars(namespace)
    outputs = []
    for dtype in parser.dataclass_types:
        inputs = {f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init and f.name in values}
        try:
            outputs.append(dtype(**inputs))
        except EliquareError:
            raise
        except (ValueError, TypeError) as err:
            raise ConfigurationError(_explain(err)) from None
    return tuple(outputs)


def _explain(err: BaseException) -> str:
    """One line for a value a dataclass refused in ``__post_init__`` (TrainingArguments' own checks)."""
    text = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip()) or type(err).__name__
    if "load_best_model_at_end" in text:
        text += (
            ". The best validation checkpoint is kept by default (--load_best_model_at_end true), which needs "
            "--eval_strategy and --save_strategy to be the same (and --eval_steps/--save_steps to agree): pass "
            "both with the same value, or --load_best_model_at_end false"
        )
    return f"Invalid arguments: {text.rstrip('.')}."


def _commands() -> dict[str, tuple[str, str]]:
    return {
        "distill": ("hf_eliquare.cli.distill", "Distil a language-specific student (examples/run_distill.py)."),
        "vocab": ("hf_eliquare.cli.vocab", "Reduce a model's vocabulary to a corpus (VocabReduce)."),
        "finetune": (
            "hf_eliquare.cli.finetune",
            "Fine-tune and test on a downstream task (examples/run_finetune.py).",
        ),
        "eval-table": ("hf_eliquare.cli.eval_table", "Models x tasks x seeds in the paper's Table 4 layout."),
        "card": ("hf_eliquare.cli.card", "(Re)generate a model card README.md (examples/make_card.py)."),
        "publish": ("hf_eliquare.cli.publish", "Push a student directory to the Hub, or stage the files (dry run)."),
        "export": (
            "hf_eliquare.cli.export",
            "ONNX export (fp32 + int8) checked against PyTorch (pip install 'hf_eliquare[onnx]').",
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``hf-eliquare COMMAND [flags]`` (also ``python -m hf_eliquare COMMAND``)."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not argv or argv[0] in ("-h", "--help"):
        lines = [f"  {name:<11} {help_}" for name, (_, help_) in commands.items()]
        print("usage: hf-eliquare COMMAND [flags]   (hf-eliquare COMMAND --help)\n\ncommands:\n" + "\n".join(lines))
        if not argv:
            sys.exit(EXIT_USER_ERROR)
        return
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"error: Unknown command {name!r}. Use one of: {', '.join(commands)}.", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    module = importlib.import_module(commands[name][0])
    run_command(module.main, rest)


__all__ = [
    "EXIT_USER_ERROR",
    "config_file_to_argv",
    "main",
    "parse_args",
    "run_command",
    "run_main",
    "setup_logging",
]
