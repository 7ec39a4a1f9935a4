"""``python -m hf_eliquare.vocab``: the same as ``hf-eliquare vocab``."""

from ..cli import run_command
from ..cli.vocab import main

if __name__ == "__main__":
    run_command(main)
