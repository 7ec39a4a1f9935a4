"""Model cards for Eliquare students and the task models fine-tuned from them.

A card is rendered from a Jinja template in ``model_cards/`` with :meth:`huggingface_hub.ModelCard.from_template`:
the YAML metadata comes from :class:`~huggingface_hub.ModelCardData` (with a ``model-index`` built from
:class:`~huggingface_hub.EvalResult` when evaluation results are given), the body from what the student directory
records (``config.json`` and the run summary ``eliquare_run.json``). Every fact is optional: a value the run did
not record is rendered as "not recorded", never guessed.

``ModelCard.validate()`` asks the Hub, so :func:`validate_card_locally` checks the card offline instead.

Command line (re-generate the card of an existing directory, merging ``run_finetune.py`` results)::

    python -m hf_eliquare.cards --model_dir DIR [--eval_results a/all_results.json b/all_results.json] [--output README.md]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, DataError

logger = logging.getLogger(__name__)

#: What the card says for a value that the run did not record.
NOT_RECORDED = "not recorded"
#: The run summary that ``examples/run_distill.py`` writes next to the student.
RUN_SUMMARY_NAME = "eliquare_run.json"
CARD_NAME = "README.md"
STUDENT_TEMPLATE = "distilled_student.md"
FINETUNED_TEMPLATE = "finetuned_task_model.md"
#: Metadata every card must carry (``base_model`` only when the teacher is a Hub model, see below).
REQUIRED_METADATA = ("language", "license", "library_name", "pipeline_tag", "tags")

#: Teachers whose Hub id and license are known, by the name people pass (or the name of a local copy).
KNOWN_TEACHERS: dict[str, tuple[str, str]] = {
    "bert-base-multilingual-cased": ("google-bert/bert-base-multilingual-cased", "apache-2.0"),
    "bert-base-multilingual-uncased": ("google-bert/bert-base-multilingual-uncased", "apache-2.0"),
    "distilbert-base-multilingual-cased": ("distilbert/distilbert-base-multilingual-cased", "apache-2.0"),
    "xlm-roberta-base": ("FacebookAI/xlm-roberta-base", "mit"),
    "xlm-roberta-large": ("FacebookAI/xlm-roberta-large", "mit"),
}

#: ``all_results.json`` keys starting with ``test_`` that are bookkeeping, not metrics.
_NOT_METRICS = {"loss", "runtime", "samples_per_second", "steps_per_second", "samples", "jit_compilation_time"}
#: Hub task type for the task names ``run_finetune.py`` uses.
_TASK_TYPES = {
    "ner": "token-classification",
    "pos": "token-classification",
    "upos": "token-classification",
    "token-classification": "token-classification",
    "cls": "text-classification",
    "sib200": "text-classification",
    "topic": "text-classification",
    "sentiment": "text-classification",
    "classification": "text-classification",
    "news": "text-classification",
    "afrisenti": "text-classification",
    "text-classification": "text-classification",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")  # ISO 639-1 (2 letters) or 639-2/3 (3 letters)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation results


@dataclass
class EvalEntry:
    """One metric of one fine-tuning run (one seed)."""

    task: str  # "ner", "pos", "sib200", …
    metric: str  # "f1", "accuracy", …
    value: float
    split: str = "test"
    dataset: str | None = None
    task_type: str | None = None  # Hub task type, e.g. "token-classification"
    seed: int | None = None
    source: str | None = None  # the file it was read from


@dataclass
class EvalSummary:
    """The runs of one (task, dataset, split, metric), averaged."""

    task: str
    task_type: str
    dataset: str
    split: str
    metric: str
    mean: float
    std: float | None
    seeds: list[int | None]

    @property
    def num_runs(self) -> int:
        return len(self.seeds)


def load_eval_results(path: str | os.PathLike) -> list[EvalEntry]:
    """Read the metrics of a ``run_finetune.py`` ``all_results.json``.

    Accepted format: a JSON object in which every numeric key ``test_<metric>`` is a metric (except bookkeeping
    such as ``test_loss`` or ``test_runtime``), and so is every numeric entry of a ``"test_metrics"`` object (what
    run_finetune.py writes). The task is ``"task"`` (or ``"task_name"``), else the name of the file's folder; the
    dataset is ``"dataset"`` / ``"dataset_name"`` / ``"data_source": {"dataset_name", "dataset_config_name"}`` when
    present (else the task name); ``"seed"`` and ``"task_type"`` are optional.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"Evaluation results file {str(path)!r} does not exist; pass the all_results.json written by run_finetune.py."
        ) from None
    except json.JSONDecodeError as err:
        raise DataError(f"Evaluation results file {str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(data, Mapping):
        raise DataError(
            f'Evaluation results file {str(path)!r} must hold a JSON object such as {{"task": "ner", "test_f1": 0.87}}.'
        )
    task = str(data.get("task") or data.get("task_name") or path.resolve().parent.name)
    dataset = _results_dataset(data) or task
    task_type = _hub_task_type(data.get("task_type"), task)
    seed = data.get("seed")
    metrics = {key[len("test_") :]: value for key, value in data.items() if key.startswith("test_")}
    if isinstance(data.get("test_metrics"), Mapping):  # run_finetune.py: {"test_metrics": {"f1": …, …}}
        metrics.pop("metrics", None)
        metrics.update(data["test_metrics"])
    entries = []
    for metric, value in metrics.items():
        if metric in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        entries.append(
            EvalEntry(
                task=task,
                metric=metric,
                value=float(value),
                dataset=dataset,
                task_type=task_type,
                seed=seed if isinstance(seed, int) else None,
                source=str(path),
            )
        )
    if not entries:
        raise DataError(
            f"Evaluation results file {str(path)!r} has no test metric: expected numeric keys such as "
            "'test_f1' or 'test_accuracy' (written by run_finetune.py with --do_predict)."
        )
    return entries


def _results_dataset(data: Mapping[str, Any]) -> str | None:
    dataset = data.get("dataset") or data.get("dataset_name")
    source = data.get("data_source")
    if not dataset and isinstance(source, Mapping) and source.get("dataset_name"):
        config = source.get("dataset_config_name")
        dataset = f"{source['dataset_name']}:{config}" if config else source["dataset_name"]
    return str(dataset) if dataset else None


def _hub_task_type(task_type: str | None, task: str | None) -> str:
    """Hub task type from a run's ``task_type`` ("ner", "classification", …) or task name ("sl_ner", …)."""
    for name in (task_type, task, (task or "").rsplit("_", 1)[-1]):
        if name and name.lower() in _TASK_TYPES:
            return _TASK_TYPES[name.lower()]
    return task_type or task or "other"


def summarize_eval(entries: Iterable[EvalEntry]) -> list[EvalSummary]:
    """Group runs by (task, dataset, split, metric) in first-seen order: mean and (for ≥2 runs) sample std."""
    groups: dict[tuple[str, str, str, str], list[EvalEntry]] = {}
    for entry in entries:
        key = (entry.task, entry.dataset or entry.task, entry.split, entry.metric)
        groups.setdefault(key, []).append(entry)
    summaries = []
    for (task, dataset, split, metric), runs in groups.items():
        values = [run.value for run in runs]
        summaries.append(
            EvalSummary(
                task=task,
                task_type=runs[0].task_type or _hub_task_type(None, task),
                dataset=dataset,
                split=split,
                metric=metric,
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None,
                seeds=[run.seed for run in runs],
            )
        )
    return summaries


def _eval_rows(summaries: Sequence[EvalSummary]) -> list[dict[str, str]]:
    rows = []
    for s in summaries:
        value = f"{s.mean:.4f}" + (f" ± {s.std:.4f}" if s.std is not None else "")
        seeds = [str(seed) for seed in s.seeds if seed is not None]
        runs = f"{s.num_runs}" + (f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})" if seeds else "")
        rows.append(dict(task=s.task, dataset=s.dataset, split=s.split, metric=s.metric, value=value, runs=runs))
    return rows


def _model_index_results(summaries: Sequence[EvalSummary]):
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=s.task_type,
            task_name=s.task,
            dataset_type=s.dataset,
            dataset_name=s.dataset,
            dataset_split=s.split,
            metric_type=s.metric,
            metric_value=round(s.mean, 6),
            metric_name=f"{s.metric} (mean of {s.num_runs} runs)" if s.num_runs > 1 else s.metric,
        )
        for s in summaries
    ]


# ----------------------------------------------------------------------------------------------------------------
# What a card describes


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(
            f"{str(path)!r} is not valid JSON ({err}); fix or delete it and regenerate the card."
        ) from None
    return data if isinstance(data, dict) else {}


def count_safetensors_parameters(model_dir: str | os.PathLike) -> int | None:
    """Number of parameters stored in the directory's safetensors weights (read from the headers only)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                total += math.prod(f.get_slice(name).get_shape())
    return total


def _known_teacher(name: str) -> tuple[str, str] | None:
    """``(hub id, license)`` of a well-known teacher, by Hub id or by the name of a local copy."""
    return KNOWN_TEACHERS.get(name) or KNOWN_TEACHERS.get(Path(name).name)


def teacher_hub_id(teacher: str | None) -> str | None:
    """The Hub id to put in ``base_model`` for a teacher name or local path, or ``None`` when it has none."""
    if not teacher:
        return None
    name = teacher.rstrip("/")
    known = _known_teacher(name)
    if known:
        return known[0]
    if os.path.exists(name) or name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        return None  # a local model: there is no Hub page to link
    return name


def teacher_license(teacher: str | None) -> str | None:
    """The teacher's license: known teachers, else the ``license`` of a local teacher's README.md."""
    if not teacher:
        return None
    name = teacher.rstrip("/")
    known = _known_teacher(name)
    if known:
        return known[1]
    readme = Path(name) / CARD_NAME
    if readme.is_file():
        from huggingface_hub import ModelCard

        try:
            return ModelCard.load(readme).data.license
        except Exception:  # a teacher card we cannot parse just does not tell us the license
            return None
    return None


@dataclass
class StudentCardInfo:
    """Everything a distilled-student card can say. Every field is optional ("not recorded" when ``None``)."""

    model_name: str | None = None  # card title; the Hub id when known
    hub_model_id: str | None = None
    lang: str | None = None
    language_name: str | None = None
    license: str | None = None
    base_model: str | None = None  # defaults to the teacher's Hub id
    # architecture (config.json)
    architecture: str | None = None
    model_type: str | None = None
    student_num_layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    # config.eliquare
    teacher: str | None = None
    teacher_num_layers: int | None = None
    teacher_layers: list[int] | None = None
    vocab_reduction: dict[str, Any] | None = None
    # run summary (eliquare_run.json)
    alpha_ce: float | None = None
    alpha_mlm: float | None = None
    alpha_cos: float | None = None
    temperature: float | None = None
    restrict_ce_to_mask: bool | None = None
    mlm_probability: float | None = None
    mlm_smoothing: float | None = None
    dataset: str | None = None
    train_sequences: int | None = None
    validation_sequences: int | None = None
    train_tokens: int | None = None
    num_train_epochs: float | None = None
    global_steps: int | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    global_batch_size: int | None = None
    learning_rate: float | None = None
    num_processes: int | None = None
    precision: str | None = None
    hardware: str | None = None
    train_runtime_s: float | None = None
    best_eval_loss: float | None = None
    student_parameters: int | None = None
    teacher_parameters: int | None = None
    seed: int | None = None
    # optional measurement of inference speed against the teacher
    speedup: float | None = None
    speed_setup: str | None = None
    extra_tags: list[str] = field(default_factory=list)
    eval_results: list[EvalEntry] = field(default_factory=list)

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, **overrides: Any) -> StudentCardInfo:
        """Read ``config.json`` and ``eliquare_run.json`` of a student directory; ``overrides`` win (``None`` ignored).

        Parameters missing from the run summary are counted from the safetensors weights.
        """
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ConfigurationError(
                f"{str(model_dir)!r} holds no config.json; pass the directory the student was saved to "
                "(the --output_dir of run_distill.py)."
            )
        config = _read_json(model_dir / "config.json")
        eliquare = config.get("eliquare") or {}
        run = _read_json(model_dir / RUN_SUMMARY_NAME)
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {
            "model_name": model_dir.resolve().name,
            "architecture": (config.get("architectures") or [None])[0],
            "model_type": config.get("model_type"),
            "student_num_layers": config.get("num_hidden_layers"),
            "hidden_size": config.get("hidden_size"),
            "vocab_size": config.get("vocab_size"),
            "teacher": eliquare.get("teacher"),
            "teacher_num_layers": eliquare.get("teacher_num_layers"),
            "teacher_layers": eliquare.get("teacher_layers"),
            "vocab_reduction": eliquare.get("vocab_reduction"),
        }
        unknown = sorted(set(run) - names)
        if unknown:
            logger.info("Not shown on the card (unknown run-summary keys): %s", ", ".join(unknown))
        values.update({key: value for key, value in run.items() if key in names and value is not None})
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values.get("student_parameters") is None:
            values["student_parameters"] = count_safetensors_parameters(model_dir)
        if values.get("license") is None:
            values["license"] = teacher_license(values.get("teacher"))
        if values.get("language_name") is None and values.get("lang"):
            from .languages import LANGUAGES

            known = LANGUAGES.get(values["lang"])
            values["language_name"] = known.name if known else None
        return cls(**values)


@dataclass
class FinetunedCardInfo:
    """What a card for a model fine-tuned from a student can say (all optional)."""

    model_name: str | None = None
    hub_model_id: str | None = None
    base_model: str | None = None  # the student it was fine-tuned from
    task: str | None = None
    pipeline_tag: str | None = None
    lang: str | None = None
    language_name: str | None = None
    license: str | None = None
    dataset: str | None = None
    labels: list[str] | None = None
    num_train_epochs: float | None = None
    learning_rate: float | None = None
    per_device_train_batch_size: int | None = None
    seed: int | None = None
    teacher: str | None = None  # from the inherited config.eliquare
    student_num_layers: int | None = None
    extra_tags: list[str] = field(default_factory=list)
    eval_results: list[EvalEntry] = field(default_factory=list)

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, **overrides: Any) -> FinetunedCardInfo:
        """Read ``config.json`` (labels, head, inherited ``eliquare``) and the run's ``all_results.json``."""
        model_dir = Path(model_dir)
        config = _read_json(model_dir / "config.json")
        if not config:
            raise ConfigurationError(
                f"{str(model_dir)!r} holds no config.json; pass the fine-tuned model's directory."
            )
        results = _read_json(model_dir / "all_results.json")
        architecture = (config.get("architectures") or [""])[0]
        pipeline_tag = (
            "token-classification"
            if architecture.endswith("ForTokenClassification")
            else "text-classification"
            if architecture.endswith("ForSequenceClassification")
            else None
        )
        id2label = config.get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=lambda k: int(k))] if id2label else None
        eliquare = config.get("eliquare") or {}
        values: dict[str, Any] = {
            "model_name": model_dir.resolve().name,
            "pipeline_tag": pipeline_tag,
            "labels": labels,
            "teacher": eliquare.get("teacher"),
            "student_num_layers": config.get("num_hidden_layers"),
            "base_model": results.get("model_name_or_path"),
            "task": results.get("task"),
            "dataset": _results_dataset(results),
            "lang": results.get("lang") or results.get("language"),
            "seed": results.get("seed"),
            "license": results.get("license"),
        }
        for key in ("num_train_epochs", "learning_rate", "per_device_train_batch_size"):
            values[key] = results.get(key)
        if values["num_train_epochs"] is None:
            values["num_train_epochs"] = results.get("epochs")
        if values["labels"] is None and isinstance(results.get("labels"), list):
            values["labels"] = [str(label) for label in results["labels"]]
        if (model_dir / "all_results.json").is_file():
            try:
                values["eval_results"] = load_eval_results(model_dir / "all_results.json")
            except DataError:
                pass  # trained but not tested: the card says so
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values.get("language_name") is None and values.get("lang"):
            from .languages import LANGUAGES

            known = LANGUAGES.get(values["lang"])
            values["language_name"] = known.name if known else None
        return cls(**values)


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def load_template(name: str) -> str:
    """Text of a card template: ``model_cards/<name>`` of a source checkout, else the copy packaged with hf_eliquare."""
    here = Path(__file__).resolve()
    if here.parent.parent.name == "src":  # running from a source checkout (editable install)
        checkout = here.parents[2] / "model_cards" / name
        if checkout.is_file():
            return checkout.read_text(encoding="utf-8")
    packaged = resources.files("hf_eliquare").joinpath("model_cards", name)
    if not packaged.is_file():
        raise ConfigurationError(
            f"Card template {name!r} not found in model_cards/ nor in the installed package; reinstall hf_eliquare "
            "(`pip install -e .`) or pass template_path=."
        )
    return packaged.read_text(encoding="utf-8")


def _show(value: Any) -> str:
    """How a value reads on a card: ``None`` → "not recorded", big integers with thousands separators."""
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_RECORDED
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _share(part: float | None, whole: float | None) -> str | None:
    if not part or not whole:
        return None
    return f"{100 * part / whole:.3g}%"


def _hub_datasets(dataset: str | None) -> list[str] | None:
    """Hub dataset ids in the run's dataset description (``"wikimedia/wikipedia:20231101.sl"`` → wikimedia/wikipedia);
    local files are not Hub datasets and are left out of the metadata (the body names them)."""
    if not dataset:
        return None
    ids = []
    for part in re.split(r"[,+]\s*|\s+", dataset.strip()):
        name = part.split(":", 1)[0]
        if (
            name.count("/") == 1
            and _HUB_ID.match(name)
            and not os.path.exists(name)
            and not re.search(r"\.(txt|gz|json|jsonl|csv|tsv|parquet|conllu)$", name)
        ):
            ids.append(name)
    return ids or None


def _language_label(info: StudentCardInfo | FinetunedCardInfo) -> str:
    if info.language_name and info.lang:
        return f"{info.language_name} ({info.lang})"
    return info.language_name or info.lang or "the target language (not recorded)"


def _generator() -> str:
    from . import __version__

    return f"hf_eliquare {__version__}"


def _tags(base: Sequence[str], info: StudentCardInfo | FinetunedCardInfo) -> list[str]:
    tags = list(base)
    for tag in info.extra_tags:
        if tag not in tags:
            tags.append(tag)
    return tags


def render_student_card(info: StudentCardInfo, template_path: str | os.PathLike | None = None):
    """Render the card of a distilled student; returns a :class:`huggingface_hub.ModelCard` (not yet validated)."""
    from huggingface_hub import ModelCard, ModelCardData

    summaries = summarize_eval(info.eval_results)
    title = info.hub_model_id or info.model_name or "Eliquare student"
    tags = ["distillation", "eliquare", "language-specific"]
    if info.vocab_reduction:
        tags.append("vocabulary-reduction")
    if info.model_type:
        tags.append(info.model_type)
    base_model = info.base_model or teacher_hub_id(info.teacher)
    card_data = ModelCardData(
        language=[info.lang] if info.lang else None,
        license=info.license or "unknown",
        library_name="transformers",
        pipeline_tag="fill-mask",
        tags=_tags(tags, info),
        base_model=base_model,
        datasets=_hub_datasets(info.dataset),
        model_name=title if summaries else None,  # only used by the model-index
        eval_results=_model_index_results(summaries) or None,
    )
    vr = info.vocab_reduction or {}
    per_device, accumulation, processes = (
        info.per_device_train_batch_size,
        info.gradient_accumulation_steps,
        info.num_processes,
    )
    if None in (per_device, accumulation, processes):
        effective_batch = f"{_show(per_device)} per device, gradient accumulation {_show(accumulation)}, {_show(processes)} processes"
    else:
        global_batch = info.global_batch_size or per_device * accumulation * processes
        effective_batch = (
            f"global batch {global_batch:,} sequences per optimizer step ({per_device} per device × "
            f"{accumulation} accumulation × {processes} process{'es' if processes != 1 else ''})"
        )
    ce_positions = {True: "masked positions only", False: "every non-padding position"}.get(
        info.restrict_ce_to_mask, NOT_RECORDED
    )
    kwargs = dict(
        info=info,
        show=_show,
        title=title,
        generator=_generator(),
        language_label=_language_label(info),
        layers_copied=_show(info.teacher_layers),
        ce_positions=ce_positions,
        effective_batch=effective_batch,
        wall_time=_duration(info.train_runtime_s),
        vocab_share=_share(vr.get("kept_vocab_size"), vr.get("original_vocab_size")),
        size_share=_share(info.student_parameters, info.teacher_parameters),
        eval_rows=_eval_rows(summaries),
        load_id=info.hub_model_id or "path/to/this/model",
    )
    template = Path(template_path).read_text(encoding="utf-8") if template_path else load_template(STUDENT_TEMPLATE)
    return ModelCard.from_template(card_data, template_str=template, **kwargs)


def render_finetuned_card(info: FinetunedCardInfo, template_path: str | os.PathLike | None = None):
    """Render the card of a task model fine-tuned from a student; returns a :class:`huggingface_hub.ModelCard`."""
    from huggingface_hub import ModelCard, ModelCardData

    summaries = summarize_eval(info.eval_results)
    title = info.hub_model_id or info.model_name or "Fine-tuned Eliquare model"
    base_model = info.base_model if info.base_model and teacher_hub_id(info.base_model) == info.base_model else None
    card_data = ModelCardData(
        language=[info.lang] if info.lang else None,
        license=info.license or "unknown",
        library_name="transformers",
        pipeline_tag=info.pipeline_tag,
        tags=_tags(["eliquare", "distillation", "language-specific"] + ([info.task] if info.task else []), info),
        base_model=base_model,
        datasets=_hub_datasets(info.dataset),
        model_name=title if summaries else None,  # only used by the model-index
        eval_results=_model_index_results(summaries) or None,
    )
    kwargs = dict(
        info=info,
        show=_show,
        title=title,
        generator=_generator(),
        language_label=_language_label(info),
        labels=", ".join(info.labels) if info.labels else NOT_RECORDED,
        eval_rows=_eval_rows(summaries),
        load_id=info.hub_model_id or "path/to/this/model",
    )
    template = Path(template_path).read_text(encoding="utf-8") if template_path else load_template(FINETUNED_TEMPLATE)
    return ModelCard.from_template(card_data, template_str=template, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Offline validation


class CardValidationError(ConfigurationError):
    """A rendered card would be rejected or mis-read by the Hub."""


def validate_card_locally(card) -> None:
    """Check a card without the Hub (``ModelCard.validate()`` needs it); raise :class:`CardValidationError`.

    Checks: the text round-trips through ``ModelCard.load`` with identical metadata; the required metadata keys are
    present; language codes have ISO 639-1/3 shape; no template syntax is left unrendered; the ``model-index``
    parses back into evaluation results whose values are numbers.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    problems = []
    text = str(card)
    metadata = card.data.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CARD_NAME
        path.write_text(text, encoding="utf-8")
        try:
            reloaded = ModelCard.load(path).data.to_dict()
        except Exception as err:
            raise CardValidationError(f"The card does not load back with ModelCard.load: {err}") from None
    if reloaded != metadata:
        problems.append("metadata changes when the card is saved and loaded again (YAML not round-trip safe)")
    for key in REQUIRED_METADATA:
        if not metadata.get(key):
            fix = " (pass the language code, e.g. --lang sl)" if key == "language" else ""
            problems.append(f"required metadata {key!r} is missing{fix}")
    languages = metadata.get("language") or []
    for code in [languages] if isinstance(languages, str) else languages:
        if not isinstance(code, str) or not _LANGUAGE_CODE.match(code):
            problems.append(f"language {code!r} is not an ISO 639-1/639-3 code (two or three lower-case letters)")
    base_model = metadata.get("base_model")
    for model_id in [base_model] if isinstance(base_model, str) else base_model or []:
        if not _HUB_ID.match(model_id):
            problems.append(f"base_model {model_id!r} is not a Hub model id")
    for marker in ("{{", "{%", "{#"):
        if marker in text:
            line = next(line for line in text.splitlines() if marker in line)
            problems.append(f"unrendered template syntax {marker!r} in line: {line.strip()[:80]!r}")
    if "model-index" in metadata:
        model_index = metadata["model-index"]
        try:
            _, results = model_index_to_eval_results(model_index)
        except Exception as err:
            problems.append(f"model-index is malformed ({type(err).__name__}: {err})")
        else:
            for result in results:
                if isinstance(result.metric_value, bool) or not isinstance(result.metric_value, (int, float)):
                    problems.append(
                        f"model-index metric {result.metric_type!r} has a non-numeric value {result.metric_value!r}"
                    )
                if not (result.task_type and result.dataset_type and result.dataset_name and result.metric_type):
                    problems.append("a model-index result lacks task type, dataset type/name or metric type")
    if problems:
        raise CardValidationError("The model card is not valid: " + "; ".join(problems) + ".")


# ----------------------------------------------------------------------------------------------------------------
# Writing


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_finetuned_dir(model_dir: str | os.PathLike) -> bool:
    """Whether the directory holds a task model (token / sequence classification head) rather than an MLM."""
    config = _read_json(Path(model_dir) / "config.json")
    architecture = (config.get("architectures") or [""])[0]
    return architecture.endswith(("ForTokenClassification", "ForSequenceClassification"))


def write_model_card(
    model_dir: str | os.PathLike,
    eval_results: Sequence[str | os.PathLike] = (),
    output: str | os.PathLike | None = None,
    template_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> Path:
    """(Re)generate and validate the card of a student (or fine-tuned) directory; return the path written.

    ``eval_results`` are ``all_results.json`` files from ``run_finetune.py`` (their test metrics go into the
    evaluation table and the ``model-index``); ``overrides`` set :class:`StudentCardInfo` fields such as ``lang``,
    ``license`` or ``hub_model_id``. The card is the same function of its inputs every time: pass all result files.
    """
    entries = [entry for path in eval_results for entry in load_eval_results(path)]
    if is_finetuned_dir(model_dir):
        info = FinetunedCardInfo.from_model_dir(model_dir, **overrides)
        if entries:  # given files replace the directory's own all_results.json
            info.eval_results = entries
        card = render_finetuned_card(info, template_path=template_path)
    else:
        info = StudentCardInfo.from_model_dir(model_dir, **overrides)
        info.eval_results = entries
        card = render_student_card(info, template_path=template_path)
    validate_card_locally(card)
    path = Path(output) if output else Path(model_dir) / CARD_NAME
    _write_atomically(path, str(card))
    logger.info("Wrote the model card %s", path)
    return path


def write_student_card(
    model_dir: str | os.PathLike, eval_results: Sequence[str | os.PathLike] = (), **overrides: Any
) -> Path:
    """Render, validate and write ``README.md`` into a student directory (what ``run_distill.py`` calls)."""
    if is_finetuned_dir(model_dir):
        raise ConfigurationError(f"{str(model_dir)!r} holds a fine-tuned task model, not a distilled student.")
    return write_model_card(model_dir, eval_results=eval_results, **overrides)


# ----------------------------------------------------------------------------------------------------------------
# Command line


@dataclass
class CardArguments:
    """Arguments of ``python -m hf_eliquare.cards`` / ``examples/make_card.py``."""

    model_dir: str = field(
        metadata={"help": "Directory of the student (or fine-tuned model): config.json, weights, eliquare_run.json."}
    )
    eval_results: list[str] = field(
        default_factory=list,
        metadata={
            "help": "all_results.json files of run_finetune.py to merge (every numeric 'test_*' key is a metric)."
        },
    )
    output: str | None = field(
        default=None, metadata={"help": "Where to write the card (default: MODEL_DIR/README.md)."}
    )
    lang: str | None = field(
        default=None, metadata={"help": "Language code, when the run summary does not record it."}
    )
    license: str | None = field(
        default=None, metadata={"help": "License id, overriding the one inherited from the teacher."}
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub id (ORG/NAME) used as title and in the loading snippet."}
    )
    template: str | None = field(default=None, metadata={"help": "A custom Jinja template instead of model_cards/."})


def main(argv: Sequence[str] | None = None) -> Path:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(CardArguments)
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        loader = parser.parse_json_file if argv[0].endswith(".json") else parser.parse_yaml_file
        (args,) = loader(os.path.abspath(argv[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    path = write_model_card(
        args.model_dir,
        eval_results=args.eval_results,
        output=args.output,
        template_path=args.template,
        lang=args.lang,
        license=args.license,
        hub_model_id=args.hub_model_id,
    )
    print(path)
    return path


if __name__ == "__main__":
    from ._cli import run_main, setup_logging

    setup_logging()
    run_main(main)
