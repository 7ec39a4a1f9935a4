"""The ``tables`` stage: RESULTS.md and the figures, generated from the cell results only.

No number in the report is typed by hand: every table cell is a mean ± sample std over the finished
fine-tuning cells (test scores of the task's main metric, in %), and a table cell whose runs have not
finished says ``pending``. The verdicts are computed from the same numbers and say only what they
support (with the seed spread, which bounds the differences the study can resolve).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from .cells import Study, table4_models
from .narrow import chosen_term, narrow_config, term_losses
from .plan import ablation_seeds, ablation_tasks, ablation_variants, chosen_learning_rate

MODEL_TITLES = {
    "teacher": "teacher",
    "basic": "student (distilled)",
    "scratch": "MLM only, random init",
    "copy": "2n−1 copy, no training",
}
COMMANDS = {
    "smoke": "python -m reproduction --scale smoke",
    "cpu": "ELIQUARE_REPRO_CACHE=/path/outside/git python -m reproduction --scale cpu",
    "gpu": "python -m reproduction --scale gpu",
}


def report_path(study: Study) -> Path:
    default_results = study.repo_root / "reproduction" / "results" / study.scale
    if study.results_dir.resolve() != default_results.resolve():
        return study.results_dir / "RESULTS.md"
    name = "RESULTS.md" if study.scale == "cpu" else f"RESULTS-{study.scale}.md"
    return study.repo_root / "reproduction" / name


# ------------------------------------------------------------------------------------------------
# Collecting scores
# ------------------------------------------------------------------------------------------------


def scores(study: Study, model: str, task: str, seeds) -> list[float]:
    out = []
    for seed in seeds:
        cell = study.cells.get(f"ft-{model}-{task}-s{seed}")
        result = study.result(cell) if cell else None
        if result:
            r = result["result"]
            out.append(100.0 * r["test_metrics"][r["main_metric"]])
    return out


def fmt(values: list[float], expected: int) -> str:
    if not values:
        return "pending"
    text = f"{statistics.mean(values):.2f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.2f}"
    if len(values) < expected:
        text += f" ({len(values)}/{expected} seeds)"
    return text


def mean_or_none(values):
    return statistics.mean(values) if values else None


def task_label(task: str) -> str:
    lang, _, kind = task.partition("_")
    return f"{lang} {kind.upper() if kind in ('pos', 'ner') else kind}"


METRIC_TITLES = {"accuracy": "accuracy", "f1": "entity-level F1 (seqeval)", "macro_f1": "macro-F1"}


def metric_names(study: Study) -> str:
    """The main metric of each task of the study, from the package's task table (the one the runs used)."""
    from hf_eliquare.evaluation.tasks import get_task

    tasks = [task for _, task in all_tasks(study)]
    return "; ".join(f"{task_label(t)}: {METRIC_TITLES.get(m, m)}" for t in tasks if (m := get_task(t).main_metric))


def all_tasks(study: Study) -> list[tuple[str, str]]:
    return [(lang, task) for lang in study.config["languages"] for task in study.config["tasks"][lang]]


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------


def cell_compute_s(record: dict) -> float:
    """A cell's compute: its wall time, or for MLM training the training seconds summed over every resumed
    session (and both phases of a continued teacher)."""
    result = record.get("result", {})
    mlm_s = sum((result.get(k) or {}).get("train_seconds", 0) for k in ("mlm", "mlm_base"))
    return mlm_s or record["wall_s"]


def status_section(study: Study) -> list[str]:
    lines = ["## Status and compute", ""]
    lines.append("| stage | cells finished | pending | compute of the finished cells |")
    lines.append("|---|---:|---:|---:|")
    total = 0.0
    for stage in ("teacher", "students", "finetune", "ablations", "narrow"):
        cells = [c for c in study.cells.values() if c.stage == stage]
        done = [study.result(c) for c in cells]
        done = [d for d in done if d]
        seconds = sum(cell_compute_s(d) for d in done)
        total += seconds
        lines.append(f"| {stage} | {len(done)} | {len(cells) - len(done)} | {seconds / 60:.1f} min |")
    lines.append(f"| **all** | | | **{total / 3600:.2f} h** |")
    lines.append("")
    from .driver import estimated_cost

    pending = [c for c in study.cells.values() if not study.done(c)]
    if pending:
        left = sum(estimated_cost(study, c) for c in pending)
        lines.append(
            f"Pending: {len(pending)} cells, about **{left / 3600:.1f} h** of compute on "
            f"{study.config.get('cost', {}).get('machine', 'the reference machine')} "
            "(measured medians of finished cells of the same kind, else the config's estimates; "
            f"`python -m reproduction --scale {study.scale} --dry-run` lists them)."
        )
        lines.append("")
    machines = {
        (d["machine"]["platform"], d["machine"]["cpu_count"], d["machine"]["torch"], d["machine"]["device"])
        for c in study.cells.values()
        if (d := study.result(c))
    }
    for platform, cpus, torch_version, device in sorted(machines):
        lines.append(f"Machine: {platform}, {cpus} CPU cores, torch {torch_version}, device {device}.")
    lines.append(
        "Compute is the wall time of each cell (the teacher: its training time summed over all resumed "
        "sessions), measured while other jobs shared the machine, so it overstates the cost on an idle one."
    )
    lines.append("")
    return lines


def teacher_section(study: Study) -> list[str]:
    cell = study.cells["teacher"]
    result = study.result(cell)
    lines = ["## Teacher", ""]
    spec = cell.spec
    if spec["kind"] == "pretrained":
        lines += [f"Existing multilingual model `{spec['name_or_path']}` (not trained here).", ""]
        return lines
    m = spec["model"]
    t = spec["train"]
    lines.append(
        f"A multilingual `BertForMaskedLM` trained here from random initialisation: {m['num_hidden_layers']} layers, "
        f"hidden {m['hidden_size']}, {m['num_attention_heads']} heads, intermediate {m['intermediate_size']}, "
        f"{m['max_position_embeddings']} positions; MLM (15 % masking, 80/10/10, smoothing {t['mlm_smoothing']}), "
        f"{t['max_steps']} steps of {t['batch_size']} sequences, AdamW lr {t['learning_rate']}, {t['warmup_steps']} "
        f"warm-up steps, linear decay. Vocabulary: the real mBERT WordPiece vocabulary (`{spec['tokenizer']}`) cut to "
        f"the sub-words that occur (≥ {spec['vocab_min_count']} sentence) in the teacher's text."
    )
    cont = spec.get("continuation")
    if cont:
        c = {**t, **cont}
        lines.append("")
        lines.append(
            f"Then **continued** from those weights for {c['max_steps']} more steps (fresh AdamW, lr "
            f"{c['learning_rate']}, {c['warmup_steps']} warm-up steps, linear decay, data-order and masking seed "
            f"{c['seed']}): the first phase ended on the MLM loss plateau, where a teacher knows little "
            "(`../shared/notes/teacher-pretraining-calibration.md`; the sl-only calibration run left it after "
            "~1,100 steps, this five-language one had not after 3,200)."
        )
    lines.append("")
    if result is None:
        lines += ["**Pending** (not finished yet; it resumes from its last checkpoint)." + checkpoint_note(study), ""]
        return lines
    r = result["result"]
    mlm = r["mlm"]
    base = r.get("mlm_base")
    steps = mlm["global_steps"] + (base["global_steps"] if base else 0)
    seconds = mlm["train_seconds"] + (base["train_seconds"] if base else 0)
    lines.append(
        f"Parameters: {mlm['parameters']:,}; vocabulary {r['vocab']['kept_vocab_size']:,} of "
        f"{r['vocab']['source_vocab_size']:,}; {steps} steps in {seconds / 60:.1f} min "
        f"({mlm['useful_tokens_per_s']:.0f} useful tokens/s)."
    )
    lines.append("")
    if base:
        bo = base["validation_overall"]
        lines.append(
            f"After the first phase ({base['global_steps']} steps): validation MLM loss {bo['mlm_loss']:.3f}, "
            f"masked-token accuracy {100 * bo['masked_token_accuracy']:.1f} % (all languages); "
            + ", ".join(
                f"{lang} {v['mlm_loss']:.2f} / {100 * v['masked_token_accuracy']:.1f} %"
                for lang, v in base["validation"].items()
            )
            + ". The table below is the final (continued) teacher."
        )
        lines.append("")
    lines.append(
        "| language | text lines kept | lines dropped (contain an evaluation sentence) | train words | "
        "validation MLM loss (nats) | masked-token accuracy |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for lang, info in r["corpus"]["languages"].items():
        v = mlm["validation"].get(lang, {})
        lines.append(
            f"| {lang} | {info['lines_kept']:,} | {info['lines_dropped_for_overlap']:,} | {info['train_words']:,} | "
            f"{v.get('mlm_loss', float('nan')):.3f} | {100 * v.get('masked_token_accuracy', float('nan')):.1f} % |"
        )
    o = mlm["validation_overall"]
    lines.append(f"| all | | | | {o['mlm_loss']:.3f} | {100 * o['masked_token_accuracy']:.1f} % |")
    lines.append("")
    lines.append(
        f"A uniform guess scores ln V = {mlm['uniform_guess_loss']:.2f} nats. Validation: held-out lines of each "
        "language (never trained on), masks fixed by seed, so the numbers compare across models."
    )
    for title, run in (("first phase", base), ("continuation", mlm) if base else ("", mlm)):
        curve = (run or {}).get("loss_curve") or []
        if curve:
            marks = [p for p in curve if p["step"] % 500 == 0 or p is curve[-1]]
            lines.append("")
            lines.append(
                f"Training loss{' (' + title + ')' if title else ''}: "
                + ", ".join(f"step {p['step']}: {p['loss']:.2f}" for p in marks)
                + "."
            )
    lines.append("")
    others = [lang for lang in r["corpus"]["languages"] if lang not in study.config["languages"]]
    if others:
        lines.append(
            f"The {', '.join(others)} text is the sentences of those languages' treebanks (no raw text exists "
            "offline for them); nothing is fine-tuned on them here, and fine-tuning this teacher on those "
            "treebanks would be leaky."
        )
        lines.append("")
    lines.append(
        f"Leakage guard: {r['corpus']['excluded_sentences']:,} sentences of the fine-tuning data sets "
        f"({', '.join('`' + e + '`' for e in r['corpus']['exclude'])}) were compared (whitespace removed) with "
        "every sentence of the text; a line holding one was dropped. SIB-200 is never used as text."
    )
    lines.append("")
    return lines


def checkpoint_note(study: Study) -> str:
    """Where an unfinished teacher stands in this machine's cache (not a result: a progress note)."""
    import json

    from .mlm import ELAPSED_FILE, last_complete_checkpoint

    art = study.artifact_dir("teacher")
    spec = study.cells["teacher"].spec
    phase, steps = "", spec["train"]["max_steps"]
    checkpoint = last_complete_checkpoint(str(art / "checkpoints"))
    if spec.get("continuation") and (art / "base_mlm_result.json").is_file():
        phase, steps = " of the continuation", spec["continuation"]["max_steps"]
        checkpoint = last_complete_checkpoint(str(art / "continuation-checkpoints"))
    if not checkpoint:
        return ""
    with open(f"{checkpoint}/{ELAPSED_FILE}") as handle:
        elapsed = json.load(handle)
    with open(f"{checkpoint}/trainer_state.json") as handle:
        losses = [e["loss"] for e in json.load(handle).get("log_history", []) if "loss" in e]
    loss = f", training loss {losses[-1]:.2f}" if losses else ""
    return (
        f" Progress in the cache that wrote this file: checkpoint{phase} at step {checkpoint.rsplit('-', 1)[1]} of "
        f"{steps} after {elapsed['train_seconds'] / 60:.0f} min of training on a shared machine{loss}."
    )


def lr_section(study: Study) -> list[str]:
    ft = study.config["finetune"]
    lines = ["## Fine-tuning protocol", ""]
    protocol = {k: v for k, v in ft.items() if k not in ("lr_candidates", "lr_selection_model", "lr_selection_seed")}
    lines.append(
        "Every model is fine-tuned with `examples/run_finetune.py` and the same settings: "
        + ", ".join(f"{k} = {v}" for k, v in protocol.items() if v is not None)
        + "; the package's defaults otherwise (weight decay 0.01, 500 warm-up steps unless `warmup_max_fraction` "
        "caps them, best validation epoch restored, SSJ dev+test pooled and re-split 80/10/10 with seed 42)."
    )
    lines.append("")
    if ft.get("learning_rate") is not None:
        lines += [f"Learning rate: {ft['learning_rate']} (fixed by the config).", ""]
        return lines
    chosen = chosen_learning_rate(study)
    lines.append(
        f"Learning rate: chosen once on **validation** data among {ft['lr_candidates']} with the "
        f"`{ft['lr_selection_model']}` (seed {ft['lr_selection_seed']}, every task; the best mean validation "
        "score wins) and then used for every model. Choosing it on the teacher favours the teacher, if anyone."
    )
    lines.append("")
    lines.append("| task | " + " | ".join(f"lr {lr:g}" for lr in ft["lr_candidates"]) + " |")
    lines.append("|---|" + "---:|" * len(ft["lr_candidates"]))
    for _lang, task in all_tasks(study):
        row = []
        for lr in ft["lr_candidates"]:
            cell = study.cells.get(f"lr-{ft['lr_selection_model']}-{task}-s{ft['lr_selection_seed']}-lr{float(lr):g}")
            res = study.result(cell) if cell else None
            if res:
                r = res["result"]
                row.append(f"{100 * r['validation_metrics'][r['main_metric']]:.2f}")
            else:
                row.append("pending")
        lines.append(f"| {task_label(task)} (validation) | " + " | ".join(row) + " |")
    lines.append("")
    if chosen is None:
        lines += ["Chosen: pending.", ""]
        return lines
    candidates = sorted(float(lr) for lr in ft["lr_candidates"])
    edge = ""
    if len(candidates) > 1 and chosen in (candidates[0], candidates[-1]):
        side = "largest" if chosen == candidates[-1] else "smallest"
        edge = (
            f" It is the {side} candidate: a rate beyond the grid may score higher still, for every model alike "
            "(the comparison between models is what the tables are for)."
        )
    lines += [f"Chosen: **{chosen:g}**.{edge}", ""]
    return lines


def table4(study: Study) -> tuple[list[str], dict]:
    seeds = study.config["finetune"]["seeds"]
    lines = ["## Table 4: student vs teacher and baselines", ""]
    lines.append("| task | " + " | ".join(MODEL_TITLES.values()) + " |")
    lines.append("|---|" + "---:|" * len(MODEL_TITLES))
    data = {}
    for lang, task in all_tasks(study):
        row = {k: scores(study, m, task, seeds) for k, m in table4_models(lang).items()}
        data[task] = row
        lines.append(f"| {task_label(task)} | " + " | ".join(fmt(row[k], len(seeds)) for k in MODEL_TITLES) + " |")
    lines.append("")
    lines.append(
        f"Test scores in % ({metric_names(study)}), mean ± sample std over "
        f"seeds {seeds}. Student: half the teacher's layers (student layer n ← teacher layer 2n−1), distilled "
        "with the triple loss 5/2/1, τ = 2, on its language's part of the teacher's text."
    )
    lines.append("")
    return lines, data


def intrinsic_section(study: Study) -> list[str]:
    """Table 4's models on one ground: masked-token loss on each language's held-out text (``intrinsic.py``)."""
    langs = [lang for lang in study.config["languages"] if f"mlm-{lang}" in study.cells]
    if not langs:
        return []
    results = {lang: study.result(f"mlm-{lang}") for lang in langs}
    maskings = study.cells[f"mlm-{langs[0]}"].spec["maskings"]
    lines = ["### Masked-token loss on held-out text", ""]
    lines.append("| model | " + " | ".join(f"{lang}, {m}: loss / accuracy" for m in maskings for lang in langs) + " |")
    lines.append("|---|" + "---:|" * (len(maskings) * len(langs)))
    for key, title in MODEL_TITLES.items():
        cells = []
        for masking in maskings:
            for lang in langs:
                scores = ((results[lang] or {}).get("result") or {}).get("scores", {}).get(masking, {})
                score = scores.get(table4_models(lang)[key])
                cells.append(
                    f"{score['mlm_loss']:.3f} / {100 * score['masked_token_accuracy']:.1f} %" if score else "pending"
                )
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    guess = next((r["result"]["uniform_guess_loss"] for r in results.values() if r), None)
    lines += [
        "",
        "Each language's held-out lines of the teacher's text (never trained on by any of these models), the same "
        "masks for every model (15 %, 80/10/10, the teacher's last seed). *uniform*: BERT's masking, the "
        f"teacher's own (its row repeats its validation loss above); *distillation*: DistilBERT's smoothing "
        f"{maskings.get('distillation', 0.7):g} (weights from the language's training-text counts), which masks rare "
        "tokens more often — the masking the students' MLM term was trained on. A model trained on one masking "
        "learns its prior over masked words, so each favours its own kind of model; the fine-tuning tables are "
        "the judge." + (f" A uniform guess scores {guess:.2f} nats." if guess else ""),
        "",
    ]
    return lines


def paired(study: Study, model_a, model_b, seeds) -> tuple[list[float], list[float]]:
    """Paired scores (same task and seed) of two model families over all tasks; ``model_*`` map a
    language to a cell name."""
    a, b = [], []
    for lang, task in all_tasks(study):
        for seed in seeds:
            sa = scores(study, model_a(lang), task, [seed])
            sb = scores(study, model_b(lang), task, [seed])
            if sa and sb:
                a.append(sa[0])
                b.append(sb[0])
    return a, b


def wilcoxon_line(name: str, a: list[float], b: list[float]) -> tuple[str, float | None]:
    if len(a) < 2:
        return f"| {name} | {len(a)} | pending | |", None
    from scipy.stats import wilcoxon

    diffs = [x - y for x, y in zip(a, b)]
    if all(d == 0 for d in diffs):
        return f"| {name} | {len(a)} | all differences 0 | |", 1.0
    test = wilcoxon(a, b, alternative="less")  # zero_method "wilcox": tied pairs are left out of the ranks
    ties = sum(d == 0 for d in diffs)
    pairs = f"{len(a)} ({ties} tied, left out)" if ties else f"{len(a)}"
    return (
        f"| {name} | {pairs} | {statistics.mean(diffs):+.2f} | {test.pvalue:.3g} |",
        float(test.pvalue),
    )


def wilcoxon_section(study: Study) -> tuple[list[str], dict]:
    seeds = study.config["finetune"]["seeds"]
    lines = ["### Wilcoxon signed-rank tests (left-tailed: is the first model worse?)", ""]
    lines.append("| comparison | pairs (task × seed) | mean difference (points) | p-value |")
    lines.append("|---|---:|---:|---:|")
    out = {}
    comparisons = [
        ("student vs teacher", lambda lang: f"distil-{lang}-basic", lambda lang: "teacher"),
        ("pre-VocabReduce student vs teacher", lambda lang: f"distil-{lang}-pre", lambda lang: "teacher"),
        ("post-VocabReduce student vs teacher", lambda lang: f"distil-{lang}-post", lambda lang: "teacher"),
        ("MLM-only random init vs student", lambda lang: f"scratch-{lang}", lambda lang: f"distil-{lang}-basic"),
        ("2n−1 copy vs student", lambda lang: f"copy-{lang}", lambda lang: f"distil-{lang}-basic"),
    ]
    for name, fa, fb in comparisons:
        a, b = paired(study, fa, fb, seeds)
        line, p = wilcoxon_line(name, a, b)
        lines.append(line)
        out[name] = (a, b, p)
    lines.append("")
    lines.append(
        "`scipy.stats.wilcoxon(first, second, alternative='less')` over all (task, seed) pairs of both "
        "languages, as the paper tests student vs teacher over all its cells. With few pairs the smallest "
        "reachable p-value is large (n = 12 pairs: 0.00024; n = 6: 0.016), so 'not significant' is weak evidence."
    )
    lines.append("")
    return lines, out


def cost_rows(study: Study) -> list[str]:
    lines = ["### Distillation cost (Table 5's speed claim)", ""]
    lines.append("| language | VocabReduce | vocabulary | student parameters | wall time | useful tokens/s | steps |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for lang in study.config["languages"]:
        for variant, title in (("basic", "none"), ("pre", "pre"), ("post", "post")):
            cell = study.cells.get(f"distil-{lang}-{variant}")
            res = study.result(cell) if cell else None
            if not res:
                lines.append(f"| {lang} | {title} | pending | | | | |")
                continue
            r = res["result"]
            lines.append(
                f"| {lang} | {title} | {r['vocab_size']:,} | {r['student_parameters']:,} | "
                f"{r['train_runtime_s'] / 60:.1f} min | {r['useful_tokens_per_s']:.0f} | {r['global_steps']} |"
            )
    lines.append("")
    lines.append(
        "Useful tokens are the non-padding tokens of the training sequences (tokens per epoch × epochs run); "
        "parameters of the saved student (post: after its vocabulary was cut). Wall time on a shared machine."
    )
    lines.append("")
    return lines


def table5(study: Study) -> tuple[list[str], dict]:
    seeds = study.config["finetune"]["seeds"]
    lines = ["## Table 5: VocabReduce before vs after distillation", ""]
    lines.append("| task | none | pre | post |")
    lines.append("|---|---:|---:|---:|")
    data = {}
    for lang, task in all_tasks(study):
        row = {v: scores(study, f"distil-{lang}-{v}", task, seeds) for v in ("basic", "pre", "post")}
        data[task] = row
        lines.append(f"| {task_label(task)} | " + " | ".join(fmt(row[v], len(seeds)) for v in row) + " |")
    lines.append("")
    return lines + cost_rows(study), data


def ablation_table(study: Study, kind: str) -> tuple[list[str], dict]:
    ft = study.config["finetune"]
    seeds = ablation_seeds(study)
    ab = study.config.get("ablations") or {}
    base_w = [float(x) for x in study.config["distill"].get("loss_weights", [5, 2, 1])]
    base_t = float(study.config["distill"].get("temperature", 2.0))
    suffix_of = {(tuple(w) if w else None, t): s for s, w, t in ablation_variants(study)}
    rows = []
    if kind == "weights":
        for w in ab.get("loss_weights", []):
            w = tuple(float(x) for x in w)
            label = "/".join(f"{x:g}" for x in w)
            rows.append((label, None if list(w) == base_w else suffix_of[(w, None)]))
        title = "## Table 6: loss terms (α_ce / α_mlm / α_cos), pre-VocabReduce student"
    else:
        for t in ab.get("temperatures", []):
            rows.append((f"τ = {float(t):g}", None if float(t) == base_t else suffix_of[(None, float(t))]))
        title = "## Table 7: temperature τ, pre-VocabReduce student"
    tasks = [(lang, task) for lang, ts in ablation_tasks(study).items() for task in ts]
    lines = [title, ""]
    lines.append(
        "| "
        + ("weights" if kind == "weights" else "τ")
        + " | "
        + " | ".join(task_label(t) for _, t in tasks)
        + " | mean |"
    )
    lines.append("|---|" + "---:|" * (len(tasks) + 1))
    data = {}
    for label, suffix in rows:
        row = {}
        for lang, task in tasks:
            model = f"distil-{lang}-pre" + (f"-{suffix}" if suffix else "")
            row[task] = scores(study, model, task, seeds)
        data[label] = row
        means = [statistics.mean(v) for v in row.values() if v]
        overall = f"{statistics.mean(means):.2f}" if len(means) == len(tasks) else "pending"
        lines.append(f"| {label} | " + " | ".join(fmt(row[t], len(seeds)) for _, t in tasks) + f" | {overall} |")
    lines.append("")
    lines.append(
        f"Seeds {seeds}; the row with the paper's setting (5/2/1, τ = 2) is the pre-VocabReduce student of Table 5."
    )
    for lang, task in all_tasks(study):
        if (lang, task) not in tasks:
            t4 = {
                name: mean_or_none(scores(study, model, task, ft["seeds"]))
                for name, model in table4_models(lang).items()
            }
            shown = ", ".join(f"{name} {m:.2f}" for name, m in t4.items() if m is not None)
            lines.append(
                f"Not fine-tuned for the ablations (the config's `ablations.tasks`): {task_label(task)}"
                + (f", where Table 4's models score {shown}" if shown else "")
                + "."
            )
    resolved = resolvable_difference(data)
    if resolved is not None:
        per_task = ", ".join(
            f"{task_label(t)} ~{d:.2f}" for _, t in tasks if (d := resolvable_difference(data, t)) is not None
        )
        lines.append(
            f"Seed noise: two rows' means differ beyond noise only by more than ~{resolved:.2f} points ({per_task} "
            "on one task): twice the standard error of the difference, from each task's seed std pooled over the rows."
        )
    lines.append("")
    return lines, data


def resolvable_difference(data: dict, task: str | None = None) -> float | None:
    """Twice the standard error of the difference of two rows' "mean" columns (the mean over tasks of
    the mean over seeds), or of two rows' means on one ``task``, with each task's seed variance pooled
    over the rows of an ablation table. None without two seeds of some row on every task."""
    tasks = [task] if task else list(next(iter(data.values()), {}))
    if not tasks:
        return None
    variances, n_seeds = [], []
    for name in tasks:
        runs = [row[name] for row in data.values() if len(row[name]) > 1]
        if not runs:
            return None
        dof = sum(len(r) - 1 for r in runs)
        variances.append(sum(statistics.variance(r) * (len(r) - 1) for r in runs) / dof)
        n_seeds.append(statistics.mean(len(r) for r in runs))
    var_mean = sum(2 * v / n for v, n in zip(variances, n_seeds)) / len(tasks) ** 2
    return 2 * var_mean**0.5


def figure(study: Study, data: dict, kind: str, path: Path) -> bool:
    """Figure 4 (bars per loss setting) or 5 (score vs τ), one series per task; False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(data)
    tasks = list(data[labels[0]]) if labels else []  # the ablation tasks, as in the table
    if not any(data[label][t] for label in labels for t in tasks):
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(tasks), 1)
    for i, task in enumerate(tasks):
        means = [mean_or_none(data[label][task]) for label in labels]
        stds = [statistics.stdev(data[label][task]) if len(data[label][task]) > 1 else 0 for label in labels]
        xs = list(range(len(labels)))
        if kind == "weights":
            ax.bar(
                [x + (i - (len(tasks) - 1) / 2) * width for x in xs],
                [m if m is not None else 0 for m in means],
                width,
                yerr=stds,
                label=task_label(task),
            )
        else:
            pts = [(x, m, s) for x, m, s in zip(xs, means, stds) if m is not None]
            if pts:
                ax.errorbar(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    yerr=[p[2] for p in pts],
                    marker="o",
                    capsize=3,
                    label=task_label(task),
                )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("test score (%)")
    ax.set_xlabel("α_ce / α_mlm / α_cos" if kind == "weights" else "temperature τ")
    ax.set_title(
        ("Figure 4: loss terms" if kind == "weights" else "Figure 5: temperature") + f" ({study.scale} scale)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------------
# Verdicts
# ------------------------------------------------------------------------------------------------


def seed_spread(study: Study) -> float | None:
    """Median over (model, task) of the seed standard deviation: differences much smaller than this
    cannot be told apart from seed noise."""
    stds = []
    for cell in study.cells.values():
        if cell.spec.get("kind") != "finetune" or not cell.name.endswith("-s1"):
            continue
        model, task = cell.spec["model"], cell.spec["task"]
        vals = scores(study, model, task, study.config["finetune"]["seeds"])
        if len(vals) > 1:
            stds.append(statistics.stdev(vals))
    return statistics.median(stds) if stds else None


def verdicts(study: Study, t4: dict, tests: dict, t5: dict, t6: dict, t7: dict) -> list[str]:
    lines = ["## Verdicts on the paper's claims (at this scale)", ""]
    spread = seed_spread(study)
    if spread is not None:
        lines.append(
            f"Seed noise: the median std over seeds of one model on one task is {spread:.2f} points; smaller "
            "differences are not resolved by this study."
        )
        lines.append("")

    # 1. student keeps the teacher's scores and beats the baselines
    a, b, p = tests["student vs teacher"]
    full = all(t4[t]["basic"] and t4[t]["teacher"] for t in t4)
    if not a:
        lines.append("1. **Student vs teacher**: pending (no paired runs yet).")
    else:
        diffs = {
            t: mean_or_none(r["basic"]) - mean_or_none(r["teacher"])
            for t, r in t4.items()
            if r["basic"] and r["teacher"]
        }
        per = ", ".join(f"{task_label(t)} {d:+.2f}" for t, d in diffs.items())
        sig = p is not None and p < 0.05
        p_text = f"p = {p:.3g}" if p is not None else "not computable (fewer than 2 pairs)"
        lines.append(
            f"1. **Student vs teacher** (paper: the student keeps or beats its teacher): student − teacher = {per} "
            f"points; left-tailed Wilcoxon {p_text} over {len(a)} pairs → "
            + (
                "the student is **significantly worse** than its teacher here: the claim does not hold at this scale."
                if sig
                else "no significant loss against the teacher detected (the claim is not contradicted; with "
                f"{len(a)} pairs this is weak evidence)."
            )
            + ("" if full else " (partial: not all tasks/seeds finished)")
        )
    for base, title in (("scratch", "MLM-only random init"), ("copy", "2n−1 copy without training")):
        diffs = {t: mean_or_none(r["basic"]) - mean_or_none(r[base]) for t, r in t4.items() if r["basic"] and r[base]}
        if diffs:
            per = ", ".join(f"{task_label(t)} {d:+.2f}" for t, d in diffs.items())
            better = sum(d > 0 for d in diffs.values())
            lines.append(
                f"   - student − {title}: {per} points; the distilled student is better on {better} of {len(diffs)} tasks."
            )
        else:
            lines.append(f"   - student vs {title}: pending.")

    # 2. pre ≈ post, pre faster
    diffs = {t: mean_or_none(r["pre"]) - mean_or_none(r["post"]) for t, r in t5.items() if r["pre"] and r["post"]}
    speed = []
    for lang in study.config["languages"]:
        none_r, pre_r, post_r = (study.result(study.cells[f"distil-{lang}-{v}"]) for v in ("basic", "pre", "post"))
        if none_r and pre_r and post_r:
            base = none_r["result"]["train_runtime_s"]
            speed.append((lang, pre_r["result"]["train_runtime_s"] / base, post_r["result"]["train_runtime_s"] / base))
    if diffs:
        per = ", ".join(f"{task_label(t)} {d:+.2f}" for t, d in diffs.items())
        # each task against its own seed noise: the pooled std of the two models on that task
        noise = {
            t: ((statistics.variance(t5[t]["pre"]) + statistics.variance(t5[t]["post"])) / 2) ** 0.5
            for t in diffs
            if len(t5[t]["pre"]) > 1 and len(t5[t]["post"]) > 1
        }
        beyond = [t for t, sd in noise.items() if abs(diffs[t]) > 2 * sd]
        verdict = (
            "every difference is within twice its task's seed std (pooled over the two models): no quality "
            "difference resolved, as the paper reports"
            if noise and not beyond
            else "beyond twice its task's seed std: "
            + ", ".join(f"{task_label(t)} ({diffs[t]:+.2f} vs std {noise[t]:.2f})" for t in beyond)
            if beyond
            else "too few seeds to compare with the seed noise"
        )
        lines.append(
            f"2. **Pre vs post VocabReduce** (paper: equal quality, pre faster): pre − post = {per} points; {verdict}."
        )
    else:
        lines.append("2. **Pre vs post VocabReduce**: pending.")
    if speed:
        lines.append(
            "   - distillation wall time relative to none, pre / post: "
            + ", ".join(f"{lang} {pre:.2f}× / {post:.2f}×" for lang, pre, post in speed)
            + " (post trains with the full vocabulary and cuts it afterwards, so it costs what none costs; its "
            "measured ratio shows how much the shared machine's load moved the wall times)."
        )

    # 3. L_mlm most important
    def drop_rows(data):
        out = {}
        for label, row in data.items():
            means = [statistics.mean(v) for v in row.values() if v]
            if len(means) == len(row):
                out[label] = statistics.mean(means)
        return out

    means6 = drop_rows(t6)
    dropped = {"0/1/1": "L_ce", "1/0/1": "L_mlm", "1/1/0": "L_cos"}
    if "1/1/1" in means6 and all(k in means6 for k in dropped):
        # change of the mean score when one term is dropped from 1/1/1: negative = the term was needed
        change = {name: means6[label] - means6["1/1/1"] for label, name in dropped.items()}
        ranked = sorted(change, key=change.get)
        most, noise = ranked[0], resolvable_difference(t6)
        per = ", ".join(f"{n} {v:+.2f}" for n, v in change.items())
        head = f"3. **Most important loss term** (paper: L_mlm): mean score change when one term is dropped from 1/1/1: {per} points"
        if change[most] >= 0:
            verdict = (
                " → dropping any one term did not lower the mean score, so no term is shown to matter here; the "
                "paper's claim is not supported at this scale"
                + (f" (the seeds resolve ~{noise:.2f} points)" if noise is not None else "")
            )
        elif noise is not None and -change[most] <= noise:
            verdict = (
                f" → the largest loss is {most}'s, but no drop exceeds the ~{noise:.2f} points the seeds resolve: "
                "no term is shown to matter here; the paper's claim is neither confirmed nor contradicted at this scale"
            )
        else:
            gap = change[ranked[1]] - change[most]
            verdict = (
                f" → here the most important is **{most}**"
                + (" (agrees with the paper" if most == "L_mlm" else " (differs from the paper")
                + (
                    ""
                    if noise is None
                    else f"; its gap to {ranked[1]} ({gap:.2f}) is "
                    + ("beyond" if gap > noise else "within")
                    + f" the ~{noise:.2f} points the seeds resolve"
                )
                + ")"
            )
        lines.append(head + verdict + ".")
        for task in next(iter(t6.values())):
            means = {label: mean_or_none(t6[label][task]) for label in ("1/1/1", *dropped)}
            if None in means.values():
                continue
            task_change = {name: means[label] - means["1/1/1"] for label, name in dropped.items()}
            top, task_noise = min(task_change, key=task_change.get), resolvable_difference(t6, task)
            if task_change[top] >= 0:
                tail = " → no drop lowers the score"
            else:
                tail = f" → largest loss: {top}" + (
                    ""
                    if task_noise is None
                    else f" ({'beyond' if -task_change[top] > task_noise else 'within'} the ~{task_noise:.2f} resolved)"
                )
            lines.append(
                f"   - {task_label(task)}: " + ", ".join(f"{n} {v:+.2f}" for n, v in task_change.items()) + tail
            )
    else:
        lines.append("3. **Most important loss term**: pending (Table 6 incomplete).")

    # 4. τ = 2 best
    means7 = drop_rows(t7)
    if len(means7) == len(t7) and means7:
        best = max(means7, key=means7.get)
        gap = means7[best] - means7.get("τ = 2", float("nan"))
        noise = resolvable_difference(t7)
        within = "" if noise is None else f"; the seeds resolve ~{noise:.2f} points"
        if best == "τ = 2":
            runner_up = max((k for k in means7 if k != best), key=means7.get, default=None)
            margin = means7[best] - means7[runner_up] if runner_up else None
            tail = " (agrees with the paper" + (
                f"; {margin:.2f} points above {runner_up}{within}"
                + (", so τ = 2 is not shown to be better than it" if noise is not None and margin <= noise else "")
                if margin is not None
                else ""
            )
        else:
            tail = f", {gap:.2f} points above τ = 2 (differs from the paper{within}" + (
                ", so the difference is within seed noise" if noise is not None and gap <= noise else ""
            )
        lines.append(
            "4. **Best temperature** (paper: τ = 2): mean over tasks "
            + ", ".join(f"{k.split('= ')[1]}: {v:.2f}" for k, v in means7.items())
            + f" → best here **{best}**"
            + tail
            + ")."
        )
        for task in next(iter(t7.values())):
            means = {label: mean_or_none(t7[label][task]) for label in t7}
            if None in means.values() or "τ = 2" not in means:
                continue
            top, task_noise = max(means, key=means.get), resolvable_difference(t7, task)
            over = means[top] - means["τ = 2"]
            lines.append(
                f"   - {task_label(task)}: best {top}"
                + (f", {over:+.2f} over τ = 2" if top != "τ = 2" else "")
                + ("" if task_noise is None else f" (the seeds resolve ~{task_noise:.2f})")
            )
    else:
        lines.append("4. **Best temperature**: pending (Table 7 incomplete).")
    lines.append("")
    lines.append(scale_limits(study))
    lines.append("")
    return lines


def scale_limits(study: Study) -> str:
    """What the verdicts are about: the teacher as trained (from its cell result) and the short runs."""
    teacher = study.result("teacher")
    spec = study.cells["teacher"].spec
    if spec["kind"] != "pretrain" or teacher is None:
        what = f"the teacher `{spec.get('name_or_path', 'teacher')}`"
    else:
        r, m = teacher["result"], spec["model"]
        runs = [r["mlm"]] + ([r["mlm_base"]] if r.get("mlm_base") else [])
        words = sum(lang["train_words"] for lang in r["corpus"]["languages"].values())
        hours = sum(run["train_seconds"] for run in runs) / 3600
        what = (
            f"a {m['num_hidden_layers']}-layer, hidden-{m['hidden_size']} teacher pretrained here for "
            f"{sum(run['global_steps'] for run in runs):,} steps ({hours:.1f} h) on {words / 1e6:.1f} M words, "
            f"still weak (validation MLM loss {r['mlm']['validation_overall']['mlm_loss']:.2f} nats, "
            f"{100 * r['mlm']['validation_overall']['masked_token_accuracy']:.0f} % of masked tokens right; "
            "not mBERT on Wikipedia)"
        )
    return (
        f"Scale limits: {what}, short distillations and short fine-tuning (see the configs). The verdicts are "
        "about this setting; `--scale gpu` runs the paper's."
    )


def narrow_section(study: Study) -> list[str]:
    """Issue 14: the narrow students against the paper's full-width student, with the goal's verdict."""
    nw = narrow_config(study)
    if not nw:
        return []
    seeds = nw.get("seeds") or study.config["finetune"]["seeds"]
    tasks = [(lang, task) for lang, lang_tasks in nw["tasks"].items() for task in lang_tasks]
    speed_result = study.result(study.cells["narrow-speed"])
    speed = speed_result["result"] if speed_result else {}
    shape = nw["student"]
    lines = ["## Narrow students: half the width, the new loss terms (issue 14)", ""]
    lines.append(
        f"Students of {student_layers_text(study)} layers: the teacher's width ({teacher_width(study)}) or "
        f"half of it (hidden {shape['hidden_size']}, {shape['num_attention_heads']} heads, FFN "
        f"{shape['intermediate_size']}; weight-selected from the teacher), distilled with the same budget as "
        "the Table 4 student, then fine-tuned with the same protocol. New terms: "
        + "; ".join(f"`{t}` = {', '.join(f'{k} {v}' for k, v in flags.items())}" for t, flags in nw["terms"].items())
        + "."
    )
    lines.append("")
    choices = []
    for lang in nw["tasks"]:
        losses = term_losses(study, lang)
        if losses is None:
            choices.append(f"{lang}: pending")
        else:
            per = ", ".join(f"{t} {v:.3f}" for t, v in losses.items())
            choices.append(f"{lang}: **{chosen_term(study, lang)}** (validation MLM loss {per})")
    lines.append(
        "Best new term per language (lower validation MLM loss of the narrow student): " + "; ".join(choices) + "."
    )
    lines.append("")
    rows = [
        ("full", "full width, triple loss (Table 4's student)", "distil-{lang}-basic"),
        ("full", "full width, triple + best term", "distil-{lang}-full-best"),
        ("narrow", "half width, triple loss", "distil-{lang}-half"),
        *(("narrow", f"half width, triple + {t}", f"distil-{{lang}}-half-{t}") for t in nw["terms"]),
        ("narrow", "half width, MLM only from random init", "scratch-{lang}-half"),
    ]
    full_speed = (speed.get("full") or {}).get("median_s")
    lines.append(
        "| student | parameters (non-embedding) | CPU inference speed-up | "
        + " | ".join(task_label(t) for _, t in tasks)
        + " |"
    )
    lines.append("|---|---:|---:|" + "---:|" * len(tasks))
    reference = {task: mean_or_none(scores(study, f"distil-{lang}-basic", task, seeds)) for lang, task in tasks}
    table = {}
    for width, title, pattern in rows:
        s_ = speed.get(width) or {}
        params = f"{s_['parameters'] / 1e6:.2f} M ({s_['non_embedding_parameters'] / 1e6:.2f} M)" if s_ else "pending"
        ratio = f"{full_speed / s_['median_s']:.2f}×" if s_ and full_speed else "pending"
        cells = []
        for lang, task in tasks:
            values = scores(study, pattern.format(lang=lang), task, seeds)
            table[(title, task)] = values
            text = fmt(values, len(seeds))
            if values and reference[task]:
                text += f" ({100 * statistics.mean(values) / reference[task]:.0f} %)"
            cells.append(text)
        lines.append(f"| {title} | {params} | {ratio} | " + " | ".join(cells) + " |")
    lines.append("")
    if speed:
        setup = speed["setup"]
        teacher_ratio = speed["teacher"]["median_s"] / full_speed if full_speed else None
        lines.append(
            f"Speed: encoders (no head) built from the teacher, {setup['batch']}, {setup['threads']} thread(s), "
            f"median of {setup['repeats']} interleaved rounds (load average {setup['load_average_1min']:.1f}); "
            f"full width {1000 * full_speed:.0f} ms, narrow {1000 * speed['narrow']['median_s']:.0f} ms, teacher "
            f"{1000 * speed['teacher']['median_s']:.0f} ms ({teacher_ratio:.2f}× the full-width student's time). "
            "Scores: test, % of the full-width triple-loss student's mean in parentheses."
        )
        lines.append("")
    # The goal: the narrow student with the new losses keeps >= 95 % at >= 2x speed.
    verdict = []
    for lang, task in tasks:
        best = chosen_term(study, lang)
        values = table.get((f"half width, triple + {best}", task)) if best else None
        if not values or not reference[task] or len(values) < len(seeds):
            verdict.append(f"{task_label(task)}: pending")
            continue
        share = 100 * statistics.mean(values) / reference[task]
        verdict.append(f"{task_label(task)} {share:.1f} % ({'met' if share >= 95 else 'not met'})")
    narrow_ratio = full_speed / speed["narrow"]["median_s"] if speed and full_speed else None
    lines.append(
        "**Goal** (narrow student with the best new term ≥ 95 % of the full-width student's score at ≥ 2× its "
        "speed): scores "
        + "; ".join(verdict)
        + "; speed "
        + (f"{narrow_ratio:.2f}× ({'met' if narrow_ratio >= 2 else 'not met'})" if narrow_ratio else "pending")
        + "."
    )
    lines.append("")
    return lines


def student_layers_text(study: Study) -> str:
    return str(study.config["distill"]["student_layers"])


def teacher_width(study: Study) -> str:
    model = study.config["teacher"].get("model") or study.config.get("scratch_model") or {}
    return f"hidden {model.get('hidden_size', '?')}"


def write_report(study: Study) -> Path:
    path = report_path(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Reproduction study — `{study.scale}` scale",
        "",
        "Generated by `python -m reproduction --scale "
        f"{study.scale} --stage tables` from the cell results in `reproduction/results/{study.scale}/` "
        "(never edited by hand). Cells not finished yet are shown as pending.",
        "",
        "Commands (each resumes where the last sitting stopped; `--dry-run` lists what is left with its cost):",
        "",
        "```bash",
        *[f"{cmd}        # {scale}" for scale, cmd in COMMANDS.items()],
        "```",
        "",
    ]
    lines += status_section(study)
    lines += teacher_section(study)
    lines += lr_section(study)
    t4_lines, t4 = table4(study)
    w_lines, tests = wilcoxon_section(study)
    t5_lines, t5 = table5(study)
    t6_lines, t6 = ablation_table(study, "weights")
    t7_lines, t7 = ablation_table(study, "tau")
    lines += verdicts(study, t4, tests, t5, t6, t7)
    lines += t4_lines + intrinsic_section(study) + w_lines + t5_lines
    for table_lines, kind, data, number in ((t6_lines, "weights", t6, 4), (t7_lines, "tau", t7, 5)):
        lines += table_lines
        fig_path = path.parent / f"figure{number}-{study.scale}.png"
        if figure(study, data, kind, fig_path):
            lines += [f"![Figure {number}]({fig_path.name})", ""]
        elif fig_path.exists():
            fig_path.unlink()
    lines += narrow_section(study)
    text = "\n".join(lines).rstrip() + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
