"""``python -m hf_eliquare COMMAND``: the same as ``hf-eliquare COMMAND``."""

from .cli import main

if __name__ == "__main__":
    main()
