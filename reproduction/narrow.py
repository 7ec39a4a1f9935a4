"""The narrow-student comparison (issue 14) as a stage of the study: students of half the teacher's width,
with DistilBERT's triple loss alone and with the new terms, against the paper's full-width student.

Cells (per language of the config's ``narrow.tasks``), all on the study's teacher, corpus and budget:

* ``distil-<lang>-half``: the narrow shape (``narrow.student``), weight-selected from the teacher, triple loss;
* ``distil-<lang>-half-<term>``: the same plus one new term (``narrow.terms``: e.g. hidden-state MSE,
  MiniLMv2 relations);
* ``distil-<lang>-full-best``: the teacher's width with the *best* new term, chosen per language as the
  one whose narrow student has the lower validation MLM loss at the end of its distillation
  (``eval_loss_mlm``, the only part of the validation loss that is comparable between objectives; no
  test score is looked at); it waits for that choice;
* ``scratch-<lang>-half``: the narrow shape trained with MLM only from random initialisation, the
  students' budget (the "narrow student trained from scratch");
* ``narrow-speed``: parameters and CPU inference time of the teacher's, the full-width and the narrow
  student's encoders, built from the teacher (weights do not change the speed);

and the fine-tuning of each of them (plus the full-width triple-loss student ``distil-<lang>-basic``
of Table 4, whose cells are shared) on the language's tasks, with the study's protocol and learning rate.
"""

from __future__ import annotations

import statistics
import time

from .cells import Cell, Study


def narrow_config(study: Study) -> dict | None:
    return study.config.get("narrow") or None


def chosen_term(study: Study, lang: str) -> str | None:
    """The new term whose narrow ``lang`` student ended with the lowest validation MLM loss, once every
    such student is finished; else None."""
    losses = term_losses(study, lang)
    if losses is None:
        return None
    return min(sorted(losses), key=losses.get)


def term_losses(study: Study, lang: str) -> dict[str, float] | None:
    losses = {}
    for term in narrow_config(study)["terms"]:
        cell = study.cells.get(f"distil-{lang}-half-{term}")
        result = study.result(cell) if cell else None
        if result is None:
            return None
        losses[term] = float(result["result"]["metrics"]["eval_loss_mlm"])
    return losses


def run_speed_cell(cell: Cell, study: Study) -> dict:
    """Encoders (no MLM head) of the teacher, the full-width and the narrow student, on real sentences of
    the first narrow language padded to ``seq_length``; ``repeats`` interleaved rounds, median seconds.
    Interleaving makes the ratios robust to a machine shared with other work (the absolute times are not)."""
    import os

    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_eliquare import create_student

    from .students import language_text, teacher_model_path

    spec = cell.spec["speed"]
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(int(spec["threads"]))
    try:
        path = teacher_model_path(study)
        teacher = AutoModelForMaskedLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        layers = cell.spec["student_layers"]
        models = {
            "teacher": teacher,
            "full": create_student(teacher, num_layers=layers),
            "narrow": create_student(teacher, num_layers=layers, **cell.spec["student"]),
        }
        encoders = {name: model.base_model.eval() for name, model in models.items()}
        lang = cell.spec["lang"]
        with open(language_text(study, lang, "validation"), encoding="utf-8") as handle:
            texts = [line.strip() for line in handle if line.strip()][: int(spec["batch_size"])]
        batch = tokenizer(
            texts, truncation=True, max_length=int(spec["seq_length"]), padding="max_length", return_tensors="pt"
        )
        times: dict[str, list[float]] = {name: [] for name in encoders}
        with torch.inference_mode():
            for encoder in encoders.values():
                encoder(**batch)  # warm-up
            for _ in range(int(spec["repeats"])):
                for name, encoder in encoders.items():
                    start = time.perf_counter()
                    encoder(**batch)
                    times[name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(saved_threads)
    result = {
        name: {
            "median_s": statistics.median(t),
            "times_s": [round(x, 5) for x in t],
            "parameters": models[name].num_parameters(),
            "encoder_parameters": encoders[name].num_parameters(),
            "non_embedding_parameters": encoders[name].num_parameters(exclude_embeddings=True),
            "hidden_size": models[name].config.hidden_size,
            "num_attention_heads": models[name].config.num_attention_heads,
            "intermediate_size": models[name].config.intermediate_size,
            "num_hidden_layers": models[name].config.num_hidden_layers,
        }
        for name, t in times.items()
    }
    result["setup"] = {
        "batch": f"{len(texts)} {lang} validation sentences padded to {spec['seq_length']}",
        "threads": int(spec["threads"]),
        "repeats": int(spec["repeats"]),
        "load_average_1min": os.getloadavg()[0],
    }
    return result
