"""The paper's Table 4: models x (two tasks per language), test score mean ± std over seeds, each cell marked
with its data provenance, and the paper's Wilcoxon signed-rank test of every model against the teacher."""

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
from .tasks import PAPER_TASKS, PROVENANCE_CODES, TASKS, get_task

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
    """``{"models": [...], "tasks": [...], "cells": {model: {task: {"mean", "std", "n", "metric", "seeds",
    "provenance", "differs_from_paper", "data"}}}}``.

    Scores are the test value of each task's main metric, in percent; ``std`` is the sample standard
    deviation over seeds (0 for a single seed). ``provenance`` is the code(s) of :data:`tasks.PROVENANCE_CODES`
    of the cell's runs (``?`` for results written before provenance was recorded)."""
    cells: dict[str, dict[str, dict]] = {}
    models: list[str] = []
    for r in map(_as_result, results):
        if r.model not in models:
            models.append(r.model)
        cell = cells.setdefault(r.model, {}).setdefault(
            r.task, {"scores": [], "seeds": [], "metric": r.main_metric, "codes": [], "data": []}
        )
        cell["scores"].append(100 * r.test_metrics[r.main_metric])
        cell["seeds"].append(r.seed)
        provenance = r.data_provenance or {"code": "?", "differs_from_paper": True, "description": "?"}
        for key, value in (("codes", provenance["code"]), ("data", provenance["description"])):
            if value not in cell[key]:
                cell[key].append(value)
        cell["differs_from_paper"] = cell.get("differs_from_paper", False) or bool(provenance["differs_from_paper"])
    for per_task in cells.values():
        for cell in per_task.values():
            s = cell.pop("scores")
            cell.update(mean=statistics.fmean(s), std=statistics.stdev(s) if len(s) > 1 else 0.0, n=len(s))
            cell["provenance"] = "/".join(cell.pop("codes"))
    tasks = _task_columns({t for per_task in cells.values() for t in per_task})
    return {"models": models, "tasks": tasks, "cells": cells}


def wilcoxon_vs_teacher(agg: dict, teacher: str) -> dict[str, dict]:
    """The paper's significance test: Wilcoxon signed-rank, left-tailed (H1: the model scores *lower* than the
    teacher), paired over the table cells (tasks) both have, on the cells' mean scores.

    Returns ``{model: {"n", "statistic", "p_value", "tasks"}}`` for every model but the teacher; ``statistic``
    is scipy's (the sum of the ranks of the positive differences model − teacher). Ties (zero differences) are
    dropped (``zero_method="wilcox"``); with no non-zero difference there is no test (``p_value`` None).
    """
    from scipy.stats import wilcoxon

    if teacher not in agg["cells"]:
        raise ConfigurationError(
            f"--teacher {teacher!r} is not a row of the table (rows: {', '.join(agg['models'])})."
        )
    out = {}
    for model in agg["models"]:
        if model == teacher:
            continue
        tasks = [t for t in agg["tasks"] if t in agg["cells"][model] and t in agg["cells"][teacher]]
        ours = [agg["cells"][model][t]["mean"] for t in tasks]
        theirs = [agg["cells"][teacher][t]["mean"] for t in tasks]
        nonzero = sum(a != b for a, b in zip(ours, theirs))
        if nonzero == 0:
            out[model] = {"n": len(tasks), "statistic": None, "p_value": None, "tasks": tasks}
            continue
        result = wilcoxon(ours, theirs, alternative="less", zero_method="wilcox")
        out[model] = {
            "n": len(tasks),
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
            "tasks": tasks,
        }
    return out


def format_table4(agg: dict, significance: dict[str, dict] | None = None, teacher: str | None = None) -> str:
    """Markdown table in the paper's Table 4 layout: rows models, columns ``lang task`` (task 1 / task 2 per
    language), cells ``mean ± std`` over seeds (``n`` seeds noted in the header line under the table).

    Every cell carries its data provenance code (``L``, ``H``, ``S``, ``F``, ``+R``; legend under the table)
    and ``†`` when its data or split differs from the paper's. ``significance`` (from
    :func:`wilcoxon_vs_teacher`) adds the test's lines."""
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
            if c is None:
                vals.append("–")
                continue
            score = f"{c['mean']:.2f} ± {c['std']:.2f}" if c["n"] > 1 else f"{c['mean']:.2f}"
            mark = c.get("provenance", "?") + ("†" if c.get("differs_from_paper", True) else "")
            vals.append(f"{score} {mark}")
        lines.append(f"| {m} | " + " | ".join(vals) + " |\n")
    metrics = ", ".join(f"{title(t)}: {TASKS[t].main_metric if t in TASKS else '?'}" for t in tasks)
    seeds = sorted({c["n"] for per in agg["cells"].values() for c in per.values()})
    note = f"\nTest scores in %, mean ± std over {'/'.join(map(str, seeds))} seed(s). Metrics: {metrics}.\n"
    cells = [c for per in agg["cells"].values() for c in per.values()]
    used = {part.split("+")[0] for c in cells for part in c.get("provenance", "?").split("/")}
    legend = [f"{code} = {PROVENANCE_CODES[code]}" for code in PROVENANCE_CODES if code in used]
    if any("+R" in c.get("provenance", "") for c in cells):
        legend.append(f"+R = {PROVENANCE_CODES['R']}")
    note += "Data: " + "; ".join(legend) + ". † = data or split differs from the paper's.\n"
    sources = []
    for t in tasks:
        data = sorted({d for m in agg["models"] for d in agg["cells"][m].get(t, {}).get("data", [])})
        if data:
            sources.append(f"{title(t)}: {' / '.join(data)}")
    if sources:
        note += "Sources: " + "; ".join(sources) + ".\n"
    if significance:
        parts = []
        for model, test in significance.items():
            if test["p_value"] is None:
                parts.append(f"{model}: no test ({test['n']} cells, no difference)")
            else:
                parts.append(f"{model}: W+ = {test['statistic']:g}, p = {test['p_value']:.4f} over {test['n']} cells")
        note += (
            f"Wilcoxon signed-rank test, left-tailed (H1: lower than {teacher}), paired over cells: "
            + "; ".join(parts)
            + ".\n"
        )
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
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Row (model label) of the teacher for the Wilcoxon signed-rank test (left-tailed, every other "
            "row vs it, over cells). Default: the first model; 'none' to skip the test."
        },
    )


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
    teacher = table_args.teacher or (agg["models"][0] if len(agg["models"]) > 1 else "none")
    significance = None if teacher == "none" else wilcoxon_vs_teacher(agg, teacher)
    table = format_table4(agg, significance, teacher)
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
                "significance": {
                    "test": "wilcoxon signed-rank, left-tailed",
                    "teacher": teacher,
                    "by_model": significance,
                },
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
    return {**agg, "significance": significance, "failures": failures, "table": table}
