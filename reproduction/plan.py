"""The cells of a scale, built from its config, in the order they should run.

Priority (what is worth having first if the compute runs out): the teacher; the basic students and
both baselines; the learning-rate choice and Table 4's fine-tuning; the pre/post VocabReduce
students and Table 5; the ablations (Tables 6 and 7); the narrow students (``narrow.py``). ``--stage``
filters by the stage label, the order stays this one.

Fine-tuning cells whose learning rate is to be chosen on validation data wait (``blocked``) until
the selection cells are finished; the plan is rebuilt after every cell, so they become runnable in
the same sitting.
"""

from __future__ import annotations

import copy
import statistics

from .cells import Cell, Study, table4_models
from .finetune import OPTIONAL_FLAGS, run_finetune_cell
from .intrinsic import mlm_eval_cell
from .narrow import chosen_term, narrow_config, run_speed_cell
from .students import run_copy_cell, run_distill_cell, run_scratch_cell
from .teacher import run_teacher

#: Fine-tuning cost relative to a student, by model (the teacher has twice the layers).
MODEL_COST = {"teacher": 2.0}


def teacher_cell(study: Study) -> Cell:
    teacher = copy.deepcopy(study.config["teacher"])
    steps = teacher.get("train", {}).get("max_steps", 0) + (teacher.get("continuation") or {}).get("max_steps", 0)
    return Cell(
        stage="teacher",
        name="teacher",
        spec=teacher,
        run=run_teacher,
        cost_s=steps * float(study.config.get("cost", {}).get("teacher_step_s", 1.0)),
        makes_model=teacher["kind"] == "pretrain",
    )


def student_layers(study: Study) -> int:
    return int(study.config["distill"]["student_layers"])


def distill_cell(
    study: Study,
    lang: str,
    variant: str,
    vocab: str,
    weights=None,
    temperature=None,
    shape: dict | None = None,
    terms: dict | None = None,
) -> Cell:
    """One distillation. ``shape`` (student width flags, e.g. ``{"student_hidden_size": 128}``) and
    ``terms`` (the optional loss terms, e.g. ``{"alpha_rel": 5, "relation_heads": 8}``) are passed to
    ``run_distill.py`` as flags; they enter the spec (and so the key) only when given, so the paper's
    students keep their keys."""
    d = study.config["distill"]
    weights = weights or d.get("loss_weights", [5.0, 2.0, 1.0])
    spec = {
        "kind": "distill",
        "teacher_key": study.cells["teacher"].key,
        "lang": lang,
        "student_layers": student_layers(study),
        "vocab_reduction": vocab,
        "alpha_ce": float(weights[0]),
        "alpha_mlm": float(weights[1]),
        "alpha_cos": float(weights[2]),
        "temperature": float(temperature if temperature is not None else d.get("temperature", 2.0)),
        "corpus": d.get("corpus", "teacher_text"),
        "distill": {
            k: v for k, v in d.items() if k not in ("student_layers", "corpus", "loss_weights", "temperature")
        },
    }
    if shape:
        spec["student_shape"] = dict(shape)
    if terms:
        spec["extra_terms"] = dict(terms)
    cost = study.config.get("cost", {})
    step_s = float(cost.get("distill_step_s", 1.0)) * (
        float(cost.get("pre_reduced_factor", 0.7)) if vocab == "pre" else 1.0
    )
    if shape:
        step_s *= float(cost.get("narrow_factor", 0.6))
    return Cell(
        stage="students",
        name=f"distil-{lang}-{variant}",
        spec=spec,
        run=run_distill_cell,
        deps=["teacher"],
        cost_s=int(d.get("max_steps") or d.get("scratch_max_steps", 0)) * step_s,
        makes_model=True,
    )


def scratch_cell(study: Study, lang: str, shape: dict | None = None, name: str | None = None) -> Cell:
    """MLM only from random initialisation, the student's architecture and the distillation's budget.
    ``shape`` overrides config fields of that architecture (the narrow students' from-scratch twin)."""
    d = study.config["distill"]
    teacher_model = study.config.get("scratch_model") or study.config["teacher"].get("model") or {}
    steps = int(d.get("max_steps") or d["scratch_max_steps"])
    spec = {
        "kind": "scratch",
        "teacher_key": study.cells["teacher"].key,
        "lang": lang,
        "model": {**teacher_model, "num_hidden_layers": student_layers(study), **(shape or {})},
        "train": {
            "max_steps": steps,
            "batch_size": int(d["batch_size"]),
            "learning_rate": float(d["learning_rate"]),
            "warmup_steps": max(1, round(0.05 * steps)),  # the distillation's default 5 %
            "weight_decay": 0.0,  # as the distillation (TrainingArguments' default)
            "max_grad_norm": 5.0,  # as the distillation (DistilBERT)
            "mlm_probability": 0.15,
            "mlm_smoothing": 0.7,  # the distillation's MLM masking
            "min_seq_length": 12,
            "save_steps": int(d.get("eval_steps") or 500),
            "logging_steps": int(d.get("logging_steps", 25)),
            "seed": int(d["seed"]),
        },
    }
    cost = study.config.get("cost", {})
    return Cell(
        stage="students",
        name=name or f"scratch-{lang}",
        spec=spec,
        run=run_scratch_cell,
        deps=["teacher"],
        cost_s=steps * float(cost.get("scratch_step_s", 0.3)),
        makes_model=True,
    )


def copy_cell(study: Study, lang: str) -> Cell:
    # One copy serves both languages' tables (it does not depend on the language); named per language
    # only to keep the tables regular.
    spec = {"kind": "copy", "teacher_key": study.cells["teacher"].key, "student_layers": student_layers(study)}
    return Cell(
        stage="students",
        name=f"copy-{lang}",
        spec=spec,
        run=run_copy_cell,
        deps=["teacher"],
        cost_s=5,
        makes_model=True,
    )


def finetune_protocol(study: Study) -> dict:
    ft = study.config["finetune"]
    keep = ("epochs", "batch_size", "max_seq_length", *OPTIONAL_FLAGS)
    return {k: ft[k] for k in keep if ft.get(k) is not None}


def lr_selection_cells(study: Study) -> list[Cell]:
    ft = study.config["finetune"]
    if ft.get("learning_rate") is not None:
        return []
    model = ft.get("lr_selection_model", "teacher")
    cells = []
    for lang in study.config["languages"]:
        for task in study.config["tasks"][lang]:
            for lr in ft["lr_candidates"]:
                cells.append(
                    finetune_cell(study, model, task, int(ft["lr_selection_seed"]), float(lr), name_prefix="lr")
                )
    return cells


def chosen_learning_rate(study: Study) -> float | None:
    """The fixed rate of the config, or the candidate with the best mean validation score over the
    selection cells (every task, the selection model), once they are all finished; else None."""
    ft = study.config["finetune"]
    if ft.get("learning_rate") is not None:
        return float(ft["learning_rate"])
    scores: dict[float, list[float]] = {}
    for cell in study.cells.values():
        if not cell.name.startswith("lr-"):
            continue
        result = study.result(cell)
        if result is None:
            return None
        r = result["result"]
        scores.setdefault(cell.spec["learning_rate"], []).append(r["validation_metrics"][r["main_metric"]])
    if not scores:
        return None
    return max(sorted(scores), key=lambda lr: statistics.mean(scores[lr]))


def finetune_cell(
    study: Study, model: str, task: str, seed: int, lr: float | None, name_prefix="ft", stage="finetune"
):
    spec = {
        "kind": "finetune",
        "model": model,
        "model_key": study.cells[model].key,
        "task": task,
        "seed": seed,
        "learning_rate": lr,
        "protocol": finetune_protocol(study),
    }
    lr_tag = f"-lr{lr:g}" if name_prefix == "lr" else ""
    cost = float(study.config.get("cost", {}).get("finetune_run_s", 60)) * MODEL_COST.get(model, 1.0)
    cell = Cell(
        stage=stage,
        name=f"{name_prefix}-{model}-{task}-s{seed}{lr_tag}",
        spec=spec,
        run=run_finetune_cell,
        deps=[model],
        cost_s=cost,
    )
    cell.blocked = lr is None
    return cell


def add_finetunes(study: Study, models_by_lang: dict[str, list[str]], seeds, lr, stage="finetune", tasks=None) -> None:
    """Seed-major: every model and task once before the second seed, so a partial run is balanced.
    ``tasks`` (language → tasks) defaults to the config's."""
    tasks = tasks or study.config["tasks"]
    for seed in seeds:
        for lang, models in models_by_lang.items():
            for task in tasks[lang]:
                for model in models:
                    name = f"ft-{model}-{task}-s{seed}"
                    if name not in study.cells:
                        study.add(finetune_cell(study, model, task, seed, lr, stage=stage))


def ablation_tasks(study: Study) -> dict[str, list[str]]:
    """Language → the tasks the ablation students are fine-tuned on: ``ablations.tasks`` of the config
    (a subset of ``tasks``, checked by ``driver.load_config``), else every task of the study. A task on
    which every model scores the same (e.g. 0) at a scale cannot rank the ablations and may be left out."""
    chosen = (study.config.get("ablations") or {}).get("tasks")
    if not chosen:
        return study.config["tasks"]
    return {lang: list(chosen.get(lang, [])) for lang in study.config["languages"]}


def ablation_seeds(study: Study) -> list[int]:
    """The fine-tuning seeds of the ablation students: ``finetune.ablation_seeds``, else ``finetune.seeds``."""
    ft = study.config["finetune"]
    return ft.get("ablation_seeds", ft["seeds"])


def ablation_variants(study: Study) -> list[tuple[str, list[float] | None, float | None]]:
    """(suffix, loss weights, temperature) of the Table 6 / Table 7 students other than the pre student
    itself (= 5/2/1 at τ = 2)."""
    ab = study.config.get("ablations") or {}
    base_w = [float(x) for x in study.config["distill"].get("loss_weights", [5, 2, 1])]
    base_t = float(study.config["distill"].get("temperature", 2.0))
    out = []
    for w in ab.get("loss_weights", []):
        w = [float(x) for x in w]
        if w != base_w:
            out.append(("w" + "".join(f"{x:g}" for x in w), w, None))
    for t in ab.get("temperatures", []):
        if float(t) != base_t:
            out.append((f"t{float(t):g}", None, float(t)))
    return out


def plan_cells(study: Study) -> None:
    cfg = study.config
    langs = cfg["languages"]
    study.add(teacher_cell(study))
    for lang in langs:
        study.add(distill_cell(study, lang, "basic", "none"))
    for lang in langs:
        study.add(scratch_cell(study, lang))
        study.add(copy_cell(study, lang))
    if study.cells["teacher"].spec["kind"] == "pretrain":  # held-out text of the teacher's own corpus
        for lang in langs:
            study.add(mlm_eval_cell(study, lang))

    for cell in lr_selection_cells(study):
        study.add(cell)
    lr = chosen_learning_rate(study)
    ft = cfg["finetune"]
    table4 = {lang: list(table4_models(lang).values()) for lang in langs}
    add_finetunes(study, table4, ft["seeds"], lr)

    for lang in langs:
        study.add(distill_cell(study, lang, "pre", "pre"))
        study.add(distill_cell(study, lang, "post", "post"))
    add_finetunes(study, {lang: [f"distil-{lang}-pre", f"distil-{lang}-post"] for lang in langs}, ft["seeds"], lr)

    variants = ablation_variants(study)
    for lang in langs:
        for suffix, weights, temperature in variants:
            cell = distill_cell(study, lang, f"pre-{suffix}", "pre", weights=weights, temperature=temperature)
            cell.stage = "ablations"
            study.add(cell)
    ablation_models = {lang: [f"distil-{lang}-pre-{s}" for s, _, _ in variants] for lang in langs}
    add_finetunes(
        study,
        ablation_models,
        ablation_seeds(study),
        lr,
        stage="ablations",
        tasks=ablation_tasks(study),
    )

    narrow_cells(study, lr)


def narrow_cells(study: Study, lr: float | None) -> None:
    """The narrow-student comparison (``narrow.py``), when the config has a ``narrow`` section."""
    nw = narrow_config(study)
    if not nw:
        return
    shape = dict(nw["student"])
    langs = list(nw["tasks"])
    speed = Cell(
        stage="narrow",
        name="narrow-speed",
        spec={
            "kind": "speed",
            "teacher_key": study.cells["teacher"].key,
            "student_layers": student_layers(study),
            "student": shape,
            "lang": langs[0],
            "speed": {"batch_size": 32, "seq_length": 128, "repeats": 20, "threads": 1, **(nw.get("speed") or {})},
        },
        run=run_speed_cell,
        deps=["teacher"],
        cost_s=60,
    )
    study.add(speed)
    for lang in langs:
        for suffix, terms in (("half", None), *((f"half-{t}", flags) for t, flags in nw["terms"].items())):
            cell = distill_cell(study, lang, suffix, "none", shape=shape, terms=terms)
            cell.stage = "narrow"
            study.add(cell)
        best = chosen_term(study, lang)
        full = distill_cell(study, lang, "full-best", "none", terms=nw["terms"][best] if best else None)
        full.stage = "narrow"
        if best is None:
            full.spec["extra_terms"] = "the best term, not chosen yet"
            full.blocked, full.waits_for = True, f"the choice of the best new term for {lang}"
        else:
            full.spec["best_term"] = best
        study.add(full)
        scratch = scratch_cell(study, lang, shape=shape, name=f"scratch-{lang}-half")
        scratch.stage = "narrow"
        study.add(scratch)
    models = {
        lang: [f"distil-{lang}-basic", f"distil-{lang}-half"]
        + [f"distil-{lang}-half-{t}" for t in nw["terms"]]
        + [f"distil-{lang}-full-best", f"scratch-{lang}-half"]
        for lang in langs
    }
    seeds = nw.get("seeds") or study.config["finetune"]["seeds"]
    add_finetunes(study, models, seeds, lr, stage="narrow", tasks=nw["tasks"])
