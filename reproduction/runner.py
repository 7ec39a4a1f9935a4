"""Running cells: subprocesses with their output in a log file, dependencies, ordering."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .cells import Cell, Study, write_json_atomic


class CellFailed(RuntimeError):
    pass


def subprocess_env(study: Study) -> dict:
    env = dict(os.environ)
    paths = [str(study.repo_root), str(study.repo_root / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if study.config.get("offline", True):
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
    return env


def execution_mode(study: Study, kind: str) -> str:
    """``subprocess`` or ``inprocess`` for cells of ``kind`` (``mlm``: the teacher and the from-scratch baselines; ``distill``; ``finetune``).

    The config's ``execution`` is either one mode for every cell (``execution: inprocess``, the smoke
    scale) or a mapping per kind (``execution: {finetune: inprocess}``, the cpu scale: its ~150 short
    fine-tunings would otherwise spend ~10 s each importing torch and transformers); unnamed kinds run
    as subprocesses.
    """
    mode = study.config.get("execution") or "subprocess"
    if isinstance(mode, dict):
        mode = mode.get(kind) or "subprocess"
    if mode not in ("subprocess", "inprocess"):
        raise ValueError(f"execution for {kind!r} must be 'subprocess' or 'inprocess', got {mode!r}")
    return mode


def run_logged(study: Study, name: str, command: list[str], kind: str) -> None:
    """Run ``command`` from the repository root, its output appended to ``<cache>/logs/<name>.log``.

    In ``inprocess`` mode (``execution_mode``) the same command line runs inside this process instead
    (same entry points and argv, no interpreter start-up: seconds instead of ~10-15 s a cell); otherwise
    a subprocess, which a crash or an OOM cannot take the driver down with.
    """
    log_dir = study.cache_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        if execution_mode(study, kind) == "inprocess":
            returncode = _run_inprocess(study, command, log)
        else:
            returncode = subprocess.run(
                command, cwd=study.repo_root, env=subprocess_env(study), stdout=log, stderr=subprocess.STDOUT
            ).returncode
    if returncode != 0:
        tail = "".join(open(log_path, encoding="utf-8", errors="replace").readlines()[-15:])
        raise CellFailed(f"{name}: command failed (exit {returncode}); log {log_path}:\n{tail}")


def _run_inprocess(study: Study, command: list[str], log) -> int:
    import contextlib
    import runpy

    assert command[0] == sys.executable
    argv = command[1:]
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    try:
        os.chdir(study.repo_root)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                if argv[0] == "-m":
                    sys.argv = [argv[1], *argv[2:]]
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = list(argv)
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
                return code if isinstance(code, int) else (0 if code is None else 1)
            except Exception:  # noqa: BLE001 - reported like a failed subprocess
                import traceback

                traceback.print_exc(file=log)
                return 1
        return 0
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "python": sys.version.split()[0],
    }


def ensure_model(study: Study, name: str, log) -> None:
    """Make sure the model of cell ``name`` is in the cache, rebuilding it (deterministically, from its
    config and seed) when a finished result exists but the weights are gone (e.g. a clean checkout)."""
    cell = study.cells[name]
    if not cell.makes_model or study.has_model(cell):
        return
    for dep in cell.deps:
        ensure_model(study, dep, log)
    log(f"[rebuild] {name}: weights missing in the cache, running it again ({study.model_dir(cell)})")
    cell.run(cell, study)
    if not study.has_model(cell):
        raise CellFailed(f"{name}: ran but left no model in {study.model_dir(cell)}")


def execute(study: Study, cell: Cell, log) -> dict:
    for dep in cell.deps:
        if not study.done(study.cells[dep]):
            raise CellFailed(f"{cell.name} needs {dep}, which is not finished: run its stage first")
        ensure_model(study, dep, log)
    started = time.time()
    log(f"[run] {cell.stage}/{cell.name} (key {cell.key[:12]}, estimated {cell.cost_s / 60:.1f} min)")
    try:
        result = cell.run(cell, study)
    except CellFailed:
        raise
    except Exception as err:  # an in-process cell's error fails the cell, not the driver (--keep-going)
        log("".join(traceback.format_exception(err)).rstrip())
        raise CellFailed(f"{cell.name}: {type(err).__name__}: {err}") from err
    record = {
        "key": cell.key,
        "name": cell.name,
        "stage": cell.stage,
        "scale": study.scale,
        "spec": cell.spec,
        "result": result,
        "wall_s": round(time.time() - started, 1),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
    }
    write_json_atomic(study.result_path(cell), record)
    log(f"[done] {cell.stage}/{cell.name} in {record['wall_s'] / 60:.1f} min")
    return record


def write_spec_file(path: Path, data: dict) -> None:
    write_json_atomic(path, data)
