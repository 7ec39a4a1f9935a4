"""What a run leaves behind, as typed summaries: written and read by the same class.

* :class:`DistillationRun` — ``eliquare_run.json`` next to a distilled student (``run_distill.py``);
* :class:`FinetuneResult` — ``all_results.json`` of a fine-tuning run (``run_finetune.py``).

Cards, the evaluation table and users read attributes, not dictionary keys, so a renamed field is a
one-line change here instead of a silent "not recorded". Loading is lenient where old files differ:
unknown keys are kept aside (``extra``), and earlier spellings (``language``/``lang``,
``epochs``/``num_train_epochs``, flat ``test_<metric>`` keys) are read into the current fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import DataError
from .io import write_text_atomically

_Run = TypeVar("_Run", bound="_Summary")

#: ``test_<name>`` keys of flat (older or hand-written) result files that are bookkeeping, not metrics.
NOT_METRICS = {
    "loss",
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "samples",
    "jit_compilation_time",
    "metrics",
}


class _Summary:
    """Shared JSON round trip: ``save`` writes every field, ``load``/``from_dict`` read them back."""

    FILE_NAME: ClassVar[str]
    #: Older key -> current field.
    ALIASES: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        extra = data.pop("extra", None) or {}
        return {**data, **{k: v for k, v in extra.items() if k not in data}}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``<directory>/<FILE_NAME>`` atomically; returns the path."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)
        return write_text_atomically(Path(directory) / self.FILE_NAME, text + "\n")

    @classmethod
    def from_dict(cls: type[_Run], data: Mapping[str, Any]) -> _Run:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            name = cls.ALIASES.get(key, key)
            if name in names:
                if values.get(name) is None:
                    values[name] = value
            else:
                extra[key] = value
        return cls(**values, extra=extra)

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> dict[str, Any]:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{str(path)!r} does not exist.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{str(path)!r} is not valid JSON ({err}); fix or delete it and run again.") from None
        if not isinstance(data, Mapping):
            raise DataError(f"{str(path)!r} must hold a JSON object.")
        return dict(data)

    @classmethod
    def load(cls: type[_Run], path: str | os.PathLike) -> _Run:
        """Read a summary file (or ``<directory>/<FILE_NAME>``)."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILE_NAME
        return cls.from_dict(cls.read_json(path))


@dataclass
class DistillationRun(_Summary):
    """The run summary ``eliquare_run.json`` that ``run_distill.py`` writes beside the student.

    Sizes after vocabulary reduction are in ``config.json`` (``eliquare.vocab_reduction``), not here.
    """

    FILE_NAME: ClassVar[str] = "eliquare_run.json"

    lang: str | None = None
    language_name: str | None = None
    teacher: str | None = None
    # objective
    alpha_ce: float | None = None
    alpha_mlm: float | None = None
    alpha_cos: float | None = None
    temperature: float | None = None
    # optional layer-to-layer and attention terms (docs/narrow_students.md)
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
    # the student's initialisation (also in config.json: eliquare.distillation_init)
    distillation_init: dict[str, Any] | None = None
    # data
    dataset: str | None = None
    train_sentences: int | None = None
    train_sequences: int | None = None
    validation_sequences: int | None = None
    train_tokens: int | None = None
    vocab_reduction_stage: str | None = None
    # schedule and hardware
    num_train_epochs: float | None = None
    global_steps: int | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    global_batch_size: int | None = None  # sequences per optimizer step over all processes (the paper: 1600)
    train_sampling_strategy: str | None = None  # group_by_length (the default) or random, ...
    learning_rate: float | None = None
    num_processes: int | None = None
    precision: str | None = None
    hardware: str | None = None
    train_runtime_s: float | None = None
    # outcome
    best_eval_loss: float | None = None
    best_checkpoint: str | None = None
    student_parameters: int | None = None
    teacher_parameters: int | None = None
    pooler_from_teacher: bool | None = None  # the checkpoint's trained pooler was written into the student
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    ALIASES: ClassVar[dict[str, str]] = {"language": "lang", "epochs": "num_train_epochs"}


@dataclass
class FinetuneResult(_Summary):
    """``all_results.json`` of one fine-tuning run (one model, task and seed); metrics are fractions."""

    FILE_NAME: ClassVar[str] = "all_results.json"

    model: str | None = None
    model_name_or_path: str | None = None
    task: str | None = None
    lang: str | None = None
    task_type: str | None = None  # ner | pos | classification (see evaluation.tasks.TASK_TYPES)
    main_metric: str | None = None
    seed: int | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    train_loss: float | None = None
    train_runtime: float | None = None
    total_runtime: float | None = None
    num_train_epochs: float | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    per_device_train_batch_size: int | None = None
    warmup_steps: float | None = None
    #: The fine-tuning protocol as asked for (the paper: 500 steps as written, no cap) and what differed from it.
    warmup_steps_requested: float | None = None
    warmup_max_fraction: float | None = None
    protocol_deviations: list[str] = field(default_factory=list)
    total_steps: int | None = None
    max_seq_length: int | None = None
    label_all_tokens: bool | None = None
    num_labels: int | None = None
    labels: list[str] | None = None
    unseen_labels: dict[str, dict[str, int]] = field(default_factory=dict)
    truncated_texts: int | None = None
    splits: dict[str, Any] = field(default_factory=dict)
    data_source: dict[str, Any] = field(default_factory=dict)
    #: ``evaluation.tasks.data_provenance``: origin, code (H/L/S/F, +R), resplit, differs_from_paper,
    #: description. ``None`` in results written before it was recorded (the table marks them ``?``).
    data_provenance: dict[str, Any] | None = None
    dataset: str | None = None
    license: str | None = None
    best_checkpoint_metric: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    ALIASES: ClassVar[dict[str, str]] = {
        "language": "lang",
        "epochs": "num_train_epochs",
        "task_name": "task",
        "dataset_name": "dataset",
    }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike | None = None) -> FinetuneResult:
        """Also reads flat ``test_<metric>`` / ``eval_<metric>`` keys (older and hand-written files); the task
        defaults to the name of the folder of ``source``."""
        data = dict(data)
        flat = {k: v for k, v in data.items() if k.startswith(("test_", "eval_")) and k not in ("test_metrics",)}
        for key in flat:
            data.pop(key)
        result = super().from_dict(data)
        for key, value in flat.items():
            prefix, name = key.split("_", 1)
            if name in NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
                result.extra[key] = value
                continue
            target = result.test_metrics if prefix == "test" else result.validation_metrics
            target.setdefault(name, value)
        if result.task is None and source is not None:
            result.task = Path(source).resolve().parent.name
        return result

    @classmethod
    def load(cls, path: str | os.PathLike) -> FinetuneResult:
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILE_NAME
        return cls.from_dict(cls.read_json(path), source=path)

    def finite_test_metrics(self) -> dict[str, float]:
        """The test metrics that are finite numbers (bookkeeping such as losses and run times left out)."""
        return {
            name: float(value)
            for name, value in self.test_metrics.items()
            if name not in NOT_METRICS
            and not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
        }

    @property
    def dataset_label(self) -> str | None:
        """``dataset`` or the Hub dataset of ``data_source`` (``name:config``); ``None`` for local files."""
        if self.dataset:
            return str(self.dataset)
        source = self.data_source or {}
        if source.get("dataset_name"):
            config = source.get("dataset_config_name")
            return f"{source['dataset_name']}:{config}" if config else source["dataset_name"]
        return None


@dataclass
class OnnxExportReport(_Summary):
    """``onnx/eliquare_onnx.json``: what ``hf-eliquare export`` (:func:`hf_eliquare.export.export_onnx`) wrote
    beside a model and what it measured. The card's ONNX section is rendered from it, read through
    :meth:`of_model_dir` (the one reader); its presence is what says "this model was exported"."""

    FILE_NAME: ClassVar[str] = "eliquare_onnx.json"
    #: The folder of the model directory that holds the ONNX files and this report.
    FOLDER: ClassVar[str] = "onnx"

    generator: str | None = None
    task: str | None = None  # fill-mask | token-classification | text-classification
    architecture: str | None = None
    exporter: str | None = None
    onnxruntime: str | None = None
    opset: int | None = None
    inputs: list[str] = field(default_factory=list)  # input_ids, attention_mask (, token_type_ids)
    outputs: list[str] = field(default_factory=list)
    dynamic_axes: list[str] = field(default_factory=list)
    #: ``"onnx/model.onnx"`` -> ``{"bytes": ..., "precision": ...}``.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    #: The check against PyTorch: sentences, source, compared, the limits, and ``results`` per precision
    #: (``max_abs_diff``, ``argmax_agreement``, ``positions``).
    check: dict[str, Any] = field(default_factory=dict)
    #: ``--measure_speed`` only: machine, torch_threads and one row per runtime.
    speed: dict[str, Any] | None = None
    export_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of_model_dir(cls, model_dir: str | os.PathLike) -> OnnxExportReport | None:
        """The report of ``<model_dir>/onnx/``, or ``None`` when the model was not exported."""
        path = Path(model_dir) / cls.FOLDER / cls.FILE_NAME
        return cls.load(path) if path.is_file() else None
