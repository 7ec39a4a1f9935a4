"""The paper's Table 4: models x (two tasks per language), test score mean ± std over seeds."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigurationError, DataError
from ..runs import FinetuneResult
from .finetune import FinetuneDataArguments, FinetuneModelArguments, FinetuneTrainingArguments, run_finetune
from .tasks import MAIN_METRIC, PAPER_TASKS, TASKS, get_task

logger = logging.getLogger(__name__)


def load_results(paths: Iterable[str | os.PathLike]) -> list[FinetuneResult]:
    """``all_results.json`` files (or directories holding one, searched recursively)."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(p.rglob(FinetuneResult.FILE_NAME)) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise DataError(f"No results file {str(f)!r}.")
            out.append(FinetuneResult.load(f))
    if not out:
        raise DataError(f"No all_results.json found under {[str(p) for p in paths]}.")
    return out


def _as_result(result: FinetuneResult | Mapping) -> FinetuneResult:
    return result if isinstance(result, FinetuneResult) else FinetuneResult.from_dict(result)


def _task_columns(tasks: Iterable[str]) -> list[str]:
    """Tasks in the paper's Table 3 order (language by language, task 1 then task 2), extras after."""
    present = set(tasks)
    ordered = [t for pair in PAPER_TASKS.values() for t in pair if t in present]
    by_lang: dict[str, list[str]] = {}
    for t in sorted(present - set(ordered)):
        lang = TASKS[t].language if t in TASKS else "?"
        by_lang.setdefault(lang, []).append(t)
    # extras of a paper language go right after that language's columns
    out = []
    for lang, pair in PAPER_TASKS.items():
        out += [t for t in pair if t in present] + by_lang.pop(lang, [])
    for lang in sorted(by_lang):
        out += by_lang[lang]
    return out


def aggregate_results(results: Iterable[FinetuneResult | Mapping]) -> dict:
    """``{"models": [...], "tasks": [...], "cells": {model: {task: {"mean", "std", "n", "metric", "seeds"}}}}``.

    Scores are the test value of each task's main metric, in percent; ``std`` is the sample standard
    deviation over seeds (0 for a single seed)."""
    cells: dict[str, dict[str, dict]] = {}
    models: list[str] = []
    for r in map(_as_result, results):
        if r.model not in models:
            models.append(r.model)
        cell = cells.setdefault(r.model, {}).setdefault(r.task, {"scores": [], "seeds": [], "metric": r.main_metric})
        cell["scores"].append(100 * r.test_metrics[r.main_metric])
        cell["seeds"].append(r.seed)
    for per_task in cells.values():
        for cell in per_task.values():
            s = cell.pop("scores")
            cell.update(mean=statistics.fmean(s), std=statistics.stdev(s) if len(s) > 1 else 0.0, n=len(s))
    tasks = _task_columns({t for per_task in cells.values() for t in per_task})
    return {"models": models, "tasks": tasks, "cells": cells}


def format_table4(agg: dict) -> str:
    """Markdown table in the paper's Table 4 layout: rows models, columns ``lang task`` (task 1 / task 2 per
    language), cells ``mean ± std`` over seeds (``n`` seeds noted in the header line under the table)."""
    tasks = agg["tasks"]

    def title(t):
        task = TASKS.get(t)
        return f"{task.language} {task.title}" if task else t

    header = "| model | " + " | ".join(title(t) for t in tasks) + " |\n"
    header += "|---|" + "---:|" * len(tasks) + "\n"
    lines = []
    for m in agg["models"]:
        vals = []
        for t in tasks:
            c = agg["cells"][m].get(t)
            vals.append(
                "–" if c is None else f"{c['mean']:.2f} ± {c['std']:.2f}" if c["n"] > 1 else f"{c['mean']:.2f}"
            )
        lines.append(f"| {m} | " + " | ".join(vals) + " |\n")
    metrics = ", ".join(f"{title(t)}: {MAIN_METRIC[TASKS[t].task_type] if t in TASKS else '?'}" for t in tasks)
    seeds = sorted({c["n"] for per in agg["cells"].values() for c in per.values()})
    note = f"\nTest scores in %, mean ± std over {'/'.join(map(str, seeds))} seed(s). Metrics: {metrics}.\n"
    return header + "".join(lines) + note


@dataclass
class EvalTableArguments:
    models: list[str] = field(
        default_factory=list,
        metadata={"help": "Models to fine-tune, as PATH or LABEL=PATH (LABEL names the table row)."},
    )
    tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "Registered tasks, or 'paper' for the 12 tasks of the paper's Table 3."},
    )
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"help": "Fine-tuning seeds (mean ± std)."})
    from_results: list[str] = field(
        default_factory=list, metadata={"help": "Also (or only) read these all_results.json files / directories."}
    )
    rerun: bool = field(default=False, metadata={"help": "Re-run cells whose all_results.json already exists."})


def _model_spec(spec: str) -> tuple[str, str]:
    label, sep, path = spec.partition("=")
    return (label, path) if sep else (Path(spec.rstrip("/")).name, spec)


def run_eval_table(
    table_args: EvalTableArguments, data_args: FinetuneDataArguments, training_args: FinetuneTrainingArguments
) -> dict:
    """Fine-tune every model on every task with every seed (``<output_dir>/<model>/<task>/seed<N>``), then
    write ``eval_table.md`` / ``eval_table.json`` in the paper's Table 4 layout. Finished cells are reused
    (``--rerun`` to redo them); a cell that fails with a user-fixable error is reported and skipped."""
    from ..errors import EliquareError

    if not training_args.output_dir:
        raise ConfigurationError("Pass --output_dir (the root of all runs and the table).")
    root = Path(training_args.output_dir)
    if root.exists() and not root.is_dir():
        raise ConfigurationError(
            f"--output_dir {str(root)!r} is a file, not a directory. Choose another --output_dir."
        )
    tasks = [
        t
        for name in table_args.tasks
        for t in ([t for p in PAPER_TASKS.values() for t in p] if name == "paper" else [name])
    ]
    for t in tasks:
        get_task(t)
    if table_args.models and not tasks:
        raise ConfigurationError("Pass --tasks (task names or 'paper').")
    if not table_args.models and not table_args.from_results:
        raise ConfigurationError("Pass --models to fine-tune, or --from_results to tabulate existing runs.")
    results = load_results(table_args.from_results) if table_args.from_results else []
    failures = []
    for spec in table_args.models:
        label, path = _model_spec(spec)
        for task in tasks:
            for seed in table_args.seeds:
                run_dir = root / label / task / f"seed{seed}"
                done = run_dir / "all_results.json"
                if done.is_file() and not table_args.rerun:
                    logger.info("Reusing %s", done)
                    results.extend(load_results([done]))
                    continue
                cell_data = dataclasses.replace(data_args, task=task, results_md=str(root / "results.md"))
                cell_train = dataclasses.replace(
                    training_args,
                    output_dir=str(run_dir),
                    seed=seed,
                    overwrite_output_dir=training_args.overwrite_output_dir or table_args.rerun,
                )
                model_args = FinetuneModelArguments(model_name_or_path=path, model_label=label)
                try:
                    results.append(run_finetune(model_args, cell_data, cell_train))
                except EliquareError as err:
                    logger.error("%s × %s (seed %d) failed: %s", label, task, seed, err)
                    failures.append({"model": label, "task": task, "seed": seed, "error": str(err)})
    if not results:
        raise DataError(f"No run finished; failures: {failures}")
    agg = aggregate_results(results)
    table = format_table4(agg)
    if failures:
        table += (
            "\nFailed: "
            + "; ".join(f"{f['model']} × {f['task']} (seed {f['seed']}): {f['error']}" for f in failures)
            + "\n"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "eval_table.md").write_text(table, encoding="utf-8")
    with open(root / "eval_table.json", "w", encoding="utf-8") as f:
        json.dump(
            {
                **agg,
                "failures": failures,
                "runs": [
                    {
                        k: getattr(r, k)
                        for k in ("model", "task", "seed", "main_metric", "test_metrics", "validation_metrics")
                    }
                    for r in results
                ],
            },
            f,
            indent=2,
            ensure_ascii=False,
        )
    print(table)
    return {**agg, "failures": failures, "table": table}
