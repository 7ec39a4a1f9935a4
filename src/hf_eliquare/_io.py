"""Write outputs so that nothing half-written ever looks complete.

Everything is written into a temporary directory beside the target and moved into place at the
end. A crash or a bad input leaves the target as it was (plus, at most, a hidden ``.NAME.tmp-*``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Moved last by :func:`commit_dir` with ``keep_existing``: their presence means "a finished model".
MODEL_MARKER_FILES = ("model.safetensors", "config.json")


def temp_dir_beside(target: str | os.PathLike) -> Path:
    """A new empty hidden directory next to ``target`` (same file system, so renames are atomic)."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def commit_dir(tmp: str | os.PathLike, target: str | os.PathLike, keep_existing: bool = False) -> None:
    """Put the contents of ``tmp`` at ``target`` and remove ``tmp``.

    ``keep_existing=False``: ``target`` is replaced as a whole (an existing one is renamed aside, then
    deleted). ``keep_existing=True``: the entries are moved into ``target`` one by one, the weights and
    ``config.json`` last, so other entries (checkpoints) stay and an interrupted move never leaves a
    directory that looks like a complete model.
    """
    tmp, target = Path(tmp), Path(target)
    if not keep_existing or not target.exists():
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    names = sorted(
        os.listdir(tmp),
        key=lambda n: (n in MODEL_MARKER_FILES, MODEL_MARKER_FILES.index(n) if n in MODEL_MARKER_FILES else 0, n),
    )
    for name in names:
        destination = target / name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(tmp / name, destination)
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(target: str | os.PathLike, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``target`` (see :func:`commit_dir`) when the block
    succeeds; on an exception it is deleted and ``target`` is left untouched."""
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        commit_dir(tmp, target, keep_existing=keep_existing)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
