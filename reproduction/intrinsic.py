"""Masked-token loss of Table 4's models on the same held-out text with the same masks.

The distillation's own validation loss cannot be set beside the teacher's: it masks with DistilBERT's
smoothing (rare tokens more often, a harder test) on the distillation's validation split, while the
teacher and the MLM-only baseline were validated with uniform masking on the held-out lines of the
teacher's text. This cell scores the teacher, the distilled student, the MLM-only baseline and the
2n−1 copy on one ground: each language's held-out lines with the same masks for every model
(:func:`reproduction.mlm.evaluate_mlm`, the teacher's last seed), under two maskings: BERT's uniform one — the
teacher's own validation, so its teacher row equals the recorded validation loss, a check that the numbers
compare — and DistilBERT's smoothed one, which the students' MLM term was trained on.

The VocabReduce students (pre, post) are not scored here: with a cut vocabulary the same text tokenises
differently (unknown words), so their masked positions and softmax differ.
"""

from __future__ import annotations

from .cells import Cell, Study, table4_models
from .students import language_text
from .teacher import final_train_settings


def mlm_eval_cell(study: Study, lang: str) -> Cell:
    teacher = study.cells["teacher"].spec
    train = final_train_settings(teacher)
    models = list(table4_models(lang).values())
    spec = {
        "kind": "mlm_eval",
        "lang": lang,
        "models": {name: study.cells[name].key for name in models},
        # uniform: BERT's masking (the teacher's validation when its smoothing is 0, as at the cpu scale);
        # distillation: DistilBERT's smoothing, weights from the counts of the language's training text.
        "maskings": {"uniform": 0.0, "distillation": float(study.config["distill"].get("mlm_smoothing", 0.7))},
        "mlm_probability": float(train.get("mlm_probability", 0.15)),
        "seed": int(train["seed"]),
        "max_seq_length": int(teacher["model"]["max_position_embeddings"]),
        "min_seq_length": int(train.get("min_seq_length", 8)),
    }
    return Cell(stage="finetune", name=f"mlm-{lang}", spec=spec, run=run_mlm_eval_cell, deps=models, cost_s=60)


def run_mlm_eval_cell(cell: Cell, study: Study) -> dict:
    import math

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_eliquare.data import token_counts
    from hf_eliquare.masking import DataCollatorForDistillation, mlm_token_probs

    from .mlm import evaluate_mlm, tokenize_file

    spec = cell.spec
    tokenizer = AutoTokenizer.from_pretrained(study.model_dir("teacher"))

    def tokenized(split: str):
        path = language_text(study, spec["lang"], split)
        return tokenize_file(path, tokenizer, spec["max_seq_length"], spec["min_seq_length"])

    dataset = tokenized("validation")
    counts = token_counts(tokenized("train"), len(tokenizer))
    collators = {
        name: DataCollatorForDistillation(
            tokenizer=tokenizer,
            token_probs=mlm_token_probs(counts, tokenizer.all_special_ids, smoothing),  # smoothing 0: all 1
            mlm_probability=spec["mlm_probability"],
            seed=spec["seed"],
        )
        for name, smoothing in spec["maskings"].items()
    }
    scores = {name: {} for name in collators}
    for model_name in spec["models"]:
        model = AutoModelForMaskedLM.from_pretrained(study.model_dir(model_name))
        if model.config.vocab_size != len(tokenizer):
            raise ValueError(f"{model_name}: vocabulary {model.config.vocab_size} != the teacher's {len(tokenizer)}")
        for name, collator in collators.items():
            scores[name][model_name] = evaluate_mlm(model, collator, dataset)
    return {"scores": scores, "uniform_guess_loss": round(math.log(len(tokenizer)), 4)}
