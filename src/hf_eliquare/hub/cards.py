"""Model cards for Eliquare students and the task models fine-tuned from them.

A card is rendered from a Jinja template in ``model_cards/`` with :meth:`huggingface_hub.ModelCard.from_template`:
the YAML metadata comes from :class:`~huggingface_hub.ModelCardData` (with a ``model-index`` built from
:class:`~huggingface_hub.EvalResult` when evaluation results are given), the body from what the student directory
records (``config.json`` and the run summary ``eliquare_run.json``). Every fact is optional: a value the run did
not record is rendered as "not recorded", never guessed.

``ModelCard.validate()`` asks the Hub, so :func:`validate_card_locally` checks the card offline instead.

Command line (re-generate the card of an existing directory, merging ``run_finetune.py`` results)::

    hf-eliquare card --model_dir DIR [--eval_results a/all_results.json b/all_results.json] [--output README.md]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DataError
from ..evaluation.tasks import find_task_type
from ..io import write_text_atomically
from ..runs import DistillationRun, FinetuneResult, OnnxExportReport
from . import looks_like_local_path

logger = logging.getLogger(__name__)

#: What the card says for a value that the run did not record.
NOT_RECORDED = "not recorded"
#: The run summary that ``examples/run_distill.py`` writes next to the student.
RUN_SUMMARY_NAME = DistillationRun.FILE_NAME
#: The one copy of the card templates: ``model_cards/`` at the repository root (this is a link to it, so
#: wheels carry the files as package data).
TEMPLATE_DIR = Path(__file__).resolve().parent / "model_cards"
CARD_NAME = "README.md"
STUDENT_TEMPLATE = "distilled_student.md"
FINETUNED_TEMPLATE = "finetuned_task_model.md"
#: The "## ONNX" section both templates show as ``{{ onnx_section }}`` (see :func:`render_onnx_section`).
ONNX_SECTION_TEMPLATE = "onnx_section.md"
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
    """The test metrics of a ``run_finetune.py`` ``all_results.json`` (:class:`~hf_eliquare.runs.FinetuneResult`),
    one :class:`EvalEntry` per metric.

    Older and hand-written files load too: flat numeric ``test_<metric>`` keys are metrics (except bookkeeping
    such as ``test_loss``); the task defaults to the name of the file's folder; the dataset to the task.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"Evaluation results file {str(path)!r} does not exist; pass the all_results.json written by run_finetune.py."
        )
    try:
        result = FinetuneResult.load(path)
    except DataError as err:
        raise DataError(f"Evaluation results file {err}") from None
    metrics = result.finite_test_metrics()
    if not metrics:
        raise DataError(
            f"Evaluation results file {str(path)!r} has no test metric: expected numeric keys such as "
            "'test_f1' or 'test_accuracy' (written by run_finetune.py with --do_predict)."
        )
    task = str(result.task)
    dataset = result.dataset_label or task
    task_type = _hub_task_type(result.task_type, task)
    seed = result.seed if isinstance(result.seed, int) else None
    return [
        EvalEntry(
            task=task,
            metric=metric,
            value=value,
            dataset=dataset,
            task_type=task_type,
            seed=seed,
            source=str(path),
        )
        for metric, value in metrics.items()
    ]


def _hub_task_type(task_type: str | None, task: str | None) -> str:
    """The Hub task type of a run, from the one task-type table (:data:`hf_eliquare.evaluation.tasks.TASK_TYPES`)."""
    found = find_task_type(task_type, task)
    return found.pipeline_tag if found else (task_type or task or "other")


def summarize_eval(entries: Iterable[EvalEntry]) -> list[EvalSummary]:
    """Group runs by (task, dataset, split, metric) in first-seen order: mean and (for ≥2 runs) sample std."""
    groups: dict[tuple[str, str, str, str], list[EvalEntry]] = {}
    for entry in entries:
        key = (entry.task, entry.dataset or entry.task, entry.split, entry.metric)
        groups.setdefault(key, []).append(entry)
    summaries = []
    for (task, dataset, split, metric), runs in groups.items():
        values = [run.value for run in runs]
        fractions = [run for run in runs if abs(run.value) <= 1]
        percents = [run for run in runs if abs(run.value) > 1]
        if fractions and percents:
            raise DataError(
                f"The {metric} results of {task} are on different scales, so their mean would mean nothing: "
                f"{fractions[0].value:g} ({fractions[0].source or 'a fraction'}) and {percents[0].value:g} "
                f"({percents[0].source or 'a percentage'}). Write every results file as run_finetune.py does "
                "(fractions in [0, 1]) and pass them again."
            )
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
    if looks_like_local_path(name) or not _HUB_ID.match(name):
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
    distillation_init: dict[str, Any] | None = None
    vocab_reduction: dict[str, Any] | None = None
    # run summary (eliquare_run.json)
    alpha_ce: float | None = None
    alpha_mlm: float | None = None
    alpha_cos: float | None = None
    temperature: float | None = None
    alpha_hidden: float | None = None
    hidden_loss: str | None = None
    hidden_layer_map: list[int] | None = None
    alpha_attn: float | None = None
    alpha_rel: float | None = None
    relation_heads: int | None = None
    relation_teacher_layer: int | None = None
    relation_student_layer: int | None = None
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
    onnx: OnnxExportReport | None = None  # onnx/eliquare_onnx.json of `hf-eliquare export`

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
        run = DistillationRun.load(model_dir) if (model_dir / RUN_SUMMARY_NAME).is_file() else DistillationRun()
        shown = {f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(DistillationRun)}
        shown -= {"distillation_init"}  # the model's own record in config.json (the run summary holds a copy)
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
            "distillation_init": eliquare.get("distillation_init"),
            "vocab_reduction": eliquare.get("vocab_reduction"),
            "onnx": OnnxExportReport.of_model_dir(model_dir),
        }
        values.update({name: getattr(run, name) for name in sorted(shown) if getattr(run, name) is not None})
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values.get("student_parameters") is None:
            values["student_parameters"] = count_safetensors_parameters(model_dir)
        if values.get("license") is None:
            values["license"] = teacher_license(values.get("teacher"))
        if values.get("language_name") is None and values.get("lang"):
            from ..languages import LANGUAGES

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
    warmup_steps: float | None = None
    main_metric: str | None = None  # the score that picked the checkpoint (the paper's per task)
    data_provenance: str | None = None  # where the data came from (evaluation.tasks.data_provenance)
    protocol_deviations: list[str] = field(default_factory=list)  # from the paper's fine-tuning protocol
    seed: int | None = None
    teacher: str | None = None  # from the inherited config.eliquare
    student_num_layers: int | None = None
    extra_tags: list[str] = field(default_factory=list)
    eval_results: list[EvalEntry] = field(default_factory=list)
    onnx: OnnxExportReport | None = None  # onnx/eliquare_onnx.json of `hf-eliquare export`

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, **overrides: Any) -> FinetunedCardInfo:
        """Read ``config.json`` (labels, head, inherited ``eliquare``) and the run's ``all_results.json``."""
        model_dir = Path(model_dir)
        config = _read_json(model_dir / "config.json")
        if not config:
            raise ConfigurationError(
                f"{str(model_dir)!r} holds no config.json; pass the fine-tuned model's directory."
            )
        results_file = model_dir / FinetuneResult.FILE_NAME
        result = FinetuneResult.load(results_file) if results_file.is_file() else FinetuneResult()
        task_type = find_task_type(result.task_type, result.task)
        architecture = (config.get("architectures") or [""])[0]
        pipeline_tag = (
            task_type.pipeline_tag
            if task_type
            else "token-classification"
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
            "labels": labels or ([str(label) for label in result.labels] if result.labels else None),
            "teacher": eliquare.get("teacher"),
            "student_num_layers": config.get("num_hidden_layers"),
            "base_model": result.model_name_or_path,
            "task": result.task if results_file.is_file() else None,
            "dataset": result.dataset_label,
            "lang": result.lang,
            "seed": result.seed,
            "license": result.license,
            "num_train_epochs": result.num_train_epochs,
            "learning_rate": result.learning_rate,
            "per_device_train_batch_size": result.per_device_train_batch_size,
            "warmup_steps": result.warmup_steps,
            "main_metric": result.main_metric,
            "data_provenance": (result.data_provenance or {}).get("description"),
            "protocol_deviations": list(result.protocol_deviations),
            "onnx": OnnxExportReport.of_model_dir(model_dir),
        }
        if results_file.is_file():
            try:
                values["eval_results"] = load_eval_results(results_file)
            except DataError:
                pass  # trained but not tested: the card says so
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values.get("language_name") is None and values.get("lang"):
            from ..languages import LANGUAGES

            known = LANGUAGES.get(values["lang"])
            values["language_name"] = known.name if known else None
        return cls(**values)


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def load_template(name: str) -> str:
    """Text of a card template from :data:`TEMPLATE_DIR` (the repository's ``model_cards/``)."""
    path = TEMPLATE_DIR / name
    if not path.is_file():
        raise ConfigurationError(
            f"Card template {name!r} not found in {str(TEMPLATE_DIR)!r}; reinstall hf_eliquare "
            "(`pip install -e .`) or pass template_path=."
        )
    return path.read_text(encoding="utf-8")


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
    from .. import __version__

    return f"hf_eliquare {__version__}"


def _onnx_view(report: OnnxExportReport) -> dict[str, Any]:
    """What the card's ONNX section shows, from the export report: files, the check, the speed when measured."""
    files = [
        dict(name=name, precision=meta.get("precision", NOT_RECORDED), size=f"{meta.get('bytes', 0) / 2**20:.1f} MiB")
        for name, meta in report.files.items()
        if not name.endswith(".json")
    ]
    check = report.check or {}
    checks = []
    for precision, values in (check.get("results") or {}).items():
        checks.append(
            dict(
                precision=precision,
                max_abs_diff=f"{values.get('max_abs_diff', float('nan')):.2g}",
                agreement=f"{100 * values.get('argmax_agreement', float('nan')):.2f}%",
                positions=_show(values.get("positions")),
            )
        )
    speed = report.speed or {}
    return dict(
        files=files,
        checks=checks,
        compared=check.get("compared", NOT_RECORDED),
        sentences=_show(check.get("sentences")),
        source=check.get("source", NOT_RECORDED),
        inputs=", ".join(f"`{name}`" for name in report.inputs),
        exporter=report.exporter or NOT_RECORDED,
        opset=_show(report.opset),
        speed_rows=speed.get("rows") or [],
        speed_machine=speed.get("machine", NOT_RECORDED),
        has_int8=any(name.endswith("model_quantized.onnx") for name in report.files),
        task=report.task or "fill-mask",
    )


def render_onnx_section(report: OnnxExportReport | None, load_id: str, language_label: str) -> str:
    """The card's "## ONNX" section (``model_cards/onnx_section.md``) for an exported model, ending with a blank
    line; ``""`` when the model was not exported.

    Both templates show it as ``{{ onnx_section }}``. It is rendered here rather than included by the templates
    because :meth:`ModelCard.from_template` renders a template string without a Jinja loader, so
    ``{% include %}`` / ``{% import %}`` cannot reach another file.
    """
    if report is None:
        return ""
    import jinja2

    text = jinja2.Template(load_template(ONNX_SECTION_TEMPLATE)).render(
        onnx=_onnx_view(report), load_id=load_id, language_label=language_label
    )
    return text.strip("\n") + "\n\n"


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
    load_id = info.hub_model_id or "path/to/this/model"
    tags = ["distillation", "eliquare", "language-specific"]
    if info.vocab_reduction:
        tags.append("vocabulary-reduction")
    if info.model_type:
        tags.append(info.model_type)
    if info.onnx is not None:
        tags.append("onnx")
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
        initialisation=_initialisation(info.distillation_init),
        extra_terms=_extra_terms(info),
        ce_positions=ce_positions,
        effective_batch=effective_batch,
        wall_time=_duration(info.train_runtime_s),
        vocab_share=_share(vr.get("kept_vocab_size"), vr.get("original_vocab_size")),
        size_share=_share(info.student_parameters, info.teacher_parameters),
        eval_rows=_eval_rows(summaries),
        load_id=load_id,
        onnx_section=render_onnx_section(info.onnx, load_id, _language_label(info)),
    )
    template = Path(template_path).read_text(encoding="utf-8") if template_path else load_template(STUDENT_TEMPLATE)
    return ModelCard.from_template(card_data, template_str=template, **kwargs)


def _initialisation(init: dict[str, Any] | None) -> str:
    """How the student's weights were initialised (``config.eliquare["distillation_init"]``), in words."""
    if not init:
        return "copied from the teacher"  # students made before narrow students existed
    if init.get("method") == "random":
        return "random (trained from scratch)"
    if init.get("method") == "weight_selection":
        return (
            "weight selection from the teacher (evenly spaced dimensions, the same in every layer): hidden "
            f"{init.get('hidden_size')} of {init.get('teacher_hidden_size')}, {init.get('num_attention_heads')} of "
            f"{init.get('teacher_num_attention_heads')} heads, FFN {init.get('intermediate_size')} of "
            f"{init.get('teacher_intermediate_size')}"
        )
    return "copied from the teacher"


def _extra_terms(info: StudentCardInfo) -> str | None:
    """The optional layer-to-layer and attention terms that were weighted (docs/narrow_students.md), in words;
    ``None`` for the triple loss alone (or a run summary that predates them)."""
    terms = []
    if info.alpha_hidden:
        layers = f", teacher layers {_show(info.hidden_layer_map)}" if info.hidden_layer_map else ""
        terms.append(f"{_show(info.alpha_hidden)} · hidden states ({info.hidden_loss or 'mse'}{layers})")
    if info.alpha_attn:
        terms.append(f"{_show(info.alpha_attn)} · attention-distribution KL")
    if info.alpha_rel:
        t_layer, s_layer = info.relation_teacher_layer, info.relation_student_layer
        layers = (
            f", teacher layer {_layer_name(t_layer)} → student layer {_layer_name(s_layer)}"
            if t_layer is not None and s_layer is not None
            else ""
        )
        heads = f"{info.relation_heads} relation heads" if info.relation_heads else "relation heads: student's heads"
        terms.append(f"{_show(info.alpha_rel)} · MiniLMv2 Q–Q/K–K/V–V relations ({heads}{layers})")
    return " + ".join(terms) or None


def _layer_name(index: int) -> str:
    """A 0-based layer index as given on the command line (negative: from the end)."""
    return "last" if index == -1 else f"{index} (from the end)" if index < 0 else str(index)


def render_finetuned_card(info: FinetunedCardInfo, template_path: str | os.PathLike | None = None):
    """Render the card of a task model fine-tuned from a student; returns a :class:`huggingface_hub.ModelCard`."""
    from huggingface_hub import ModelCard, ModelCardData

    summaries = summarize_eval(info.eval_results)
    title = info.hub_model_id or info.model_name or "Fine-tuned Eliquare model"
    load_id = info.hub_model_id or "path/to/this/model"
    base_model = info.base_model if info.base_model and teacher_hub_id(info.base_model) == info.base_model else None
    card_data = ModelCardData(
        language=[info.lang] if info.lang else None,
        license=info.license or "unknown",
        library_name="transformers",
        pipeline_tag=info.pipeline_tag,
        tags=_tags(
            ["eliquare", "distillation", "language-specific"]
            + ([info.task] if info.task else [])
            + (["onnx"] if info.onnx is not None else []),
            info,
        ),
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
        load_id=load_id,
        onnx_section=render_onnx_section(info.onnx, load_id, _language_label(info)),
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
    if path.is_dir():
        raise ConfigurationError(
            f"--output {str(path)!r} is a directory; pass the card's file name (e.g. DIR/README.md)."
        )
    write_text_atomically(path, str(card))
    logger.info("Wrote the model card %s", path)
    return path


def write_student_card(
    model_dir: str | os.PathLike, eval_results: Sequence[str | os.PathLike] = (), **overrides: Any
) -> Path:
    """Render, validate and write ``README.md`` into a student directory (what ``run_distill.py`` calls)."""
    if is_finetuned_dir(model_dir):
        raise ConfigurationError(f"{str(model_dir)!r} holds a fine-tuned task model, not a distilled student.")
    return write_model_card(model_dir, eval_results=eval_results, **overrides)
