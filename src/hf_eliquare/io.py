"""Outputs: one output-directory policy and one atomic writer, so nothing half-written ever looks complete.

Every command writes into a temporary directory beside its target and moves it into place at the end.
A crash or a bad input leaves the target as it was (plus, at most, a hidden ``.NAME.tmp-*`` that the
next run of the same command removes). Files and directories get the permissions the user's umask gives,
as ``save_pretrained`` does (``tempfile`` alone would make them private: 0600 / 0700).

The policy (:func:`check_output_dir`), the same for every command:

* an ``--output_dir`` that is a file, or inside a model directory given as input, is refused;
* a new or empty directory is used;
* a non-empty one is refused unless ``--overwrite_output_dir`` — except for distillation, which resumes
  from the checkpoints of an unfinished run in it (``resumable=True``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import OutputDirError

#: Moved last by :func:`commit_dir` with ``keep_existing``: their presence means "a finished model".
MODEL_MARKER_FILES = ("model.safetensors", "config.json")
#: Hidden temporary directories older than this are left-overs of a killed run and removed.
STALE_TEMP_SECONDS = 60.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(path: Path, directory: bool) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have given it (mkstemp/mkdtemp use 0600/0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def holds_finished_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a saved model (``config.json`` and ``model.safetensors``)."""
    return all(os.path.isfile(os.path.join(directory, name)) for name in MODEL_MARKER_FILES)


def _same_or_inside(path: Path, other: Path) -> bool:
    path, other = path.resolve(), other.resolve()
    return path == other or other in path.parents


def check_output_dir(
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    resumable: bool = False,
    inputs: Sequence[str | os.PathLike | None] = (),
    flag: str = "--output_dir",
    overwrite_flag: str | None = "--overwrite_output_dir",
) -> None:
    """The one output-directory policy (module docstring). ``inputs`` are directories the command reads
    (teacher, model, corpus folders): writing into one of them would replace the user's input, so it is
    refused even with ``overwrite``. Raises :class:`OutputDirError` naming the fix."""
    out = Path(output_dir)
    for source in inputs:
        if source and os.path.isdir(source) and _same_or_inside(out, Path(source)):
            raise OutputDirError(
                f"{flag} {str(output_dir)!r} is the input model directory {str(source)!r} (or inside it): writing there "
                f"would replace the input. Choose another {flag}."
            )
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{flag} {str(output_dir)!r} is a file, not a directory. Choose another {flag}.")
    if not out.is_dir() or overwrite:
        return
    entries = [name for name in os.listdir(out) if not _is_temp_name(name)]
    if not entries:
        return
    if resumable and not holds_finished_model(out):
        return
    if holds_finished_model(out) and overwrite_flag:
        raise OutputDirError(
            f"{str(output_dir)!r} already holds a finished model. Choose another {flag}, or pass "
            "--overwrite_output_dir to replace it."
        )
    fix = (
        f"Pass {overwrite_flag} to replace it or choose another {flag}."
        if overwrite_flag
        else f"Pass a new or empty {flag}, or delete it."
    )
    raise OutputDirError(f"{flag} {str(output_dir)!r} already exists and is not empty. {fix}")


def check_writable(output_dir: str | os.PathLike, flag: str = "--output_dir") -> None:
    """Refuse, at start-up, an output directory that cannot be created or written (not an epoch later)."""
    out = Path(output_dir).absolute()
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(
            f"{flag} {str(output_dir)!r} cannot be written: {str(existing)!r} is not a writable directory. "
            f"Fix its permissions or choose another {flag}."
        )
    if out.is_dir() and out.parent.exists() and not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputDirError(
            f"{flag} {str(output_dir)!r} cannot be replaced atomically: its parent {str(out.parent)!r} is not writable "
            f"(outputs are written beside it first). Choose another {flag}."
        )


def _is_temp_name(name: str) -> bool:
    return name.startswith(".") and (".tmp-" in name or ".old-" in name)


def remove_stale_temp_dirs(target: str | os.PathLike) -> list[Path]:
    """Remove hidden ``.NAME.tmp-*`` / ``.NAME.old-*`` left beside ``target`` by a killed run; return them."""
    target = Path(target).absolute()
    if not target.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for leftover in target.parent.glob(pattern):
            try:
                if leftover.is_dir() and now - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)
                    removed.append(leftover)
            except OSError:
                continue
    return removed


def temp_dir_beside(target: str | os.PathLike) -> Path:
    """A new empty hidden directory next to ``target`` (same file system, so renames are atomic)."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    _apply_umask(tmp, directory=True)
    return tmp


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
    remove_stale_temp_dirs(target)
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        commit_dir(tmp, target, keep_existing=keep_existing)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename (the one
    atomic file writer: a crash leaves the old file or the new one, never half of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _apply_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
