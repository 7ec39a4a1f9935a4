"""``python -m reproduction --scale smoke|cpu|gpu``: the paper's study as resumable cells.

Stages, in order: ``teacher`` → ``students`` (distillations and baselines) → ``finetune`` (Tables 4
and 5) → ``ablations`` (Tables 6 and 7, their distillations and fine-tuning) → ``narrow`` (narrower
students and the new loss terms, issue 14) → ``tables`` (RESULTS.md, figures). Within a stage the cells
run in the config's priority order. Finished cells are skipped. ``--model-path CELL`` prints where a
cell's model is (building it first when the cache lacks it), to use it outside the study.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

from .cells import Study
from .runner import CellFailed, execute

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
STAGES = ("teacher", "students", "finetune", "ablations", "narrow", "tables")
_HELD_LOCK = None


class UsageError(Exception):
    """Bad input: reported as one ``error:`` line, exit status 2."""


def load_config(scale: str, path: str | None) -> dict:
    config_path = Path(path) if path else CONFIG_DIR / f"{scale}.yaml"
    if not config_path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise UsageError(f"no config {config_path}: use --scale {known}, or --config FILE.yaml")
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    missing = [k for k in ("teacher", "languages", "tasks", "distill", "finetune") if k not in (config or {})]
    if missing:
        raise UsageError(f"config {config_path} lacks {', '.join(missing)} (see reproduction/configs/cpu.yaml)")
    ablation_tasks = (config.get("ablations") or {}).get("tasks") or {}
    unknown = [
        f"{lang}: {t}" for lang, ts in ablation_tasks.items() for t in ts if t not in config["tasks"].get(lang, [])
    ]
    if unknown:
        raise UsageError(
            f"config {config_path}: ablations.tasks names {', '.join(unknown)}, not a task of the study "
            f"(tasks: {config['tasks']}); list a subset of `tasks`"
        )
    return config


def default_cache_dir(scale: str) -> Path:
    env = os.environ.get("ELIQUARE_REPRO_CACHE")
    if env:
        return Path(env) / scale
    return Path.home() / ".cache" / "hf_eliquare" / "reproduction" / scale


def build_study(scale: str, config: dict, results_dir: Path | None = None, cache_dir: Path | None = None) -> Study:
    from .plan import plan_cells

    study = Study(
        scale,
        config,
        results_dir=results_dir or REPO_ROOT / "reproduction" / "results" / scale,
        cache_dir=cache_dir or default_cache_dir(scale),
        repo_root=REPO_ROOT,
    )
    plan_cells(study)
    return study


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m reproduction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke", help="smoke | cpu | gpu (a config in reproduction/configs)")
    parser.add_argument("--config", help="Another config file (yaml) instead of configs/<scale>.yaml.")
    parser.add_argument(
        "--stage",
        default="all",
        choices=("all", *STAGES),
        help="Run this stage only (default: all stages in order; 'tables' only writes RESULTS.md).",
    )
    parser.add_argument("--only", nargs="+", metavar="GLOB", help="Only cells whose name matches a glob.")
    parser.add_argument("--max-cells", type=int, help="Stop after running this many cells (spread the work).")
    parser.add_argument("--dry-run", action="store_true", help="List the pending cells with estimated cost.")
    parser.add_argument("--results-dir", type=Path, help="Default: reproduction/results/<scale>.")
    parser.add_argument(
        "--cache-dir", type=Path, help="Weights cache (default: $ELIQUARE_REPRO_CACHE/<scale> or ~/.cache/...)."
    )
    parser.add_argument("--keep-going", action="store_true", help="Go on with other cells after a failed one.")
    parser.add_argument(
        "--model-path",
        metavar="CELL",
        help="Print the model directory of CELL (e.g. distil-sl-basic), building it and its inputs into the "
        "cache first when missing; for fine-tuning the study's models on other tasks.",
    )
    return parser.parse_args(argv)


def select(study: Study, args) -> list:
    stages = STAGES if args.stage == "all" else (args.stage,)
    return [
        c
        for c in study.cells.values()
        if c.stage in stages and (not args.only or any(fnmatch.fnmatch(c.name, g) for g in args.only))
    ]


def runnable(study: Study, cell) -> bool:
    return not cell.blocked and all(study.done(study.cells[d]) for d in cell.deps)


def _cost_class(cell) -> tuple:
    spec = cell.spec
    return (
        spec.get("kind", cell.stage),
        spec.get("task"),
        spec.get("model") == "teacher",
        spec.get("vocab_reduction"),
    )


def estimated_cost(study: Study, cell) -> float:
    """Measured wall time of finished cells of the same kind (median), else the config's estimate."""
    same = [
        r["wall_s"]
        for c in study.cells.values()
        if _cost_class(c) == _cost_class(cell) and (r := study.result(c)) is not None
    ]
    cost = statistics.median(same) if same else cell.cost_s
    steps = (cell.spec.get("train") or {}).get("max_steps")
    if steps and cell.makes_model:  # a resumable MLM run: only the steps after its last checkpoint are left
        from .mlm import last_complete_checkpoint

        def done_steps(work_dir: Path) -> int:
            checkpoint = last_complete_checkpoint(str(work_dir))
            return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0

        art = study.artifact_dir(cell)
        continued = (cell.spec.get("continuation") or {}).get("max_steps", 0)
        finished_base = continued and (art / "base_mlm_result.json").is_file()
        done = int(steps) if finished_base else done_steps(art / "checkpoints")
        done += done_steps(art / "continuation-checkpoints") if continued else 0
        cost *= max(0.0, 1.0 - done / (int(steps) + int(continued)))
    return cost


def dry_run(study: Study, args) -> int:
    selected = select(study, args)
    pending = [c for c in selected if not study.done(c)]
    costs = {c.name: estimated_cost(study, c) for c in pending}
    total = sum(costs.values())
    print(
        f"scale {args.scale}: {len(selected)} cells selected, {len(selected) - len(pending)} finished, "
        f"{len(pending)} pending, ~{total / 3600:.2f} h of compute (estimates: measured medians where cells of "
        "the same kind have finished, else the config's)"
    )
    for c in pending:
        why = f" (waits for {c.waits_for})" if c.blocked else ""
        print(f"  {c.stage:10s} {c.name:44s} ~{costs[c.name] / 60:6.1f} min  key {c.key[:12]}{why}")
    return 0


def main(argv=None) -> int:
    try:
        return _main(argv)
    except (UsageError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def lock_cache(cache_dir: Path):
    """One driver per cache at a time: two would train the same checkpoints. The lock is an ``flock`` on
    ``<cache>/.driver.lock``, released by the kernel when the process ends, however it ends."""
    import fcntl

    cache_dir.mkdir(parents=True, exist_ok=True)
    handle = open(cache_dir / ".driver.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise UsageError(
            f"another driver is running on {cache_dir} (pid {handle.read().strip() or '?'}); wait for it or stop it"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def print_model_path(study: Study, name: str, log) -> int:
    """Print the model directory of cell ``name``; when the cache lacks it, build it (and the models it
    needs) first, under the cache's lock: a finished cell from its committed config, an unfinished one
    by running it (which also writes its result)."""
    from .runner import ensure_model

    cell = study.cells.get(name)
    if cell is None or not cell.makes_model:
        models = sorted(c.name for c in study.cells.values() if c.makes_model)
        raise UsageError(f"no model cell {name!r} in this scale; model cells: {', '.join(models)}")
    if cell.blocked:
        raise UsageError(f"{name} waits for {cell.waits_for}; run the study further first")

    def build(cell_name: str) -> None:
        c = study.cells[cell_name]
        if study.done(c):
            ensure_model(study, cell_name, log)
            return
        for dep in c.deps:
            build(dep)
        execute(study, c, log)

    if not study.has_model(cell):
        global _HELD_LOCK
        _HELD_LOCK = lock_cache(study.cache_dir)
        log(f"{name}: not in the cache {study.cache_dir}; building it (and what it needs) from its config")
        try:
            build(name)
        except CellFailed as err:
            log(f"[failed] {err}")
            return 1
    print(study.model_dir(cell))
    return 0


def _main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config = load_config(args.scale, args.config)
    study = build_study(args.scale, config, args.results_dir, args.cache_dir)
    if args.dry_run:
        return dry_run(study, args)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    if args.model_path:  # stdout holds only the path: MODEL=$(python -m reproduction ... --model-path CELL)
        return print_model_path(
            study, args.model_path, lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", file=sys.stderr)
        )

    global _HELD_LOCK  # held until the process ends (or the next main() in the same process)
    _HELD_LOCK = None if args.stage == "tables" else lock_cache(study.cache_dir)

    pending = [c for c in select(study, args) if not study.done(c)]
    log(f"scale {args.scale}: {len(pending)} selected cells pending; cache {study.cache_dir}")
    ran, failed = 0, set()
    while True:
        # Re-plan after every cell: a finished learning-rate selection unblocks the fine-tuning cells.
        study = build_study(args.scale, config, args.results_dir, args.cache_dir)
        todo = [c for c in select(study, args) if not study.done(c) and c.name not in failed]
        ready = [c for c in todo if runnable(study, c)]
        if not ready:
            if todo:
                log(f"{len(todo)} selected cells cannot run yet (their inputs are not finished): {todo[0].name} ...")
            break
        if args.max_cells is not None and ran >= args.max_cells:
            log(f"--max-cells {args.max_cells} reached; {len(todo)} selected cells left")
            break
        cell = ready[0]
        try:
            execute(study, cell, log)
            ran += 1
        except CellFailed as err:
            failed.add(cell.name)
            log(f"[failed] {err}")
            if not args.keep_going:
                break
    if args.stage in ("all", "tables"):
        from .report import write_report

        path = write_report(build_study(args.scale, config, args.results_dir, args.cache_dir))
        log(f"wrote {path}")
    if failed:
        log(f"failed cells: {', '.join(sorted(failed))}")
        return 1
    return 0
