"""ONNX export of a released student (or a task model fine-tuned from one), checked against PyTorch.

Writes ``onnx/model.onnx`` (fp32) and ``onnx/model_quantized.onnx`` (dynamic int8) into a model directory: the
layout ONNX Runtime users and transformers.js (``dtype: "fp32"`` / ``"q8"``) load from a Hub repository. Inputs are
named as transformers' tokenizers name them (``input_ids``, ``attention_mask`` and ``token_type_ids`` when the
tokenizer produces them), the output is ``logits``; batch and sequence axes are dynamic (``batch_size``,
``sequence_length``).

Why this path: optimum-onnx pins transformers < 4.58, so it does not fit transformers 5. ``torch.onnx.export`` with
``dynamo=True`` (``torch.export`` + onnxscript) is PyTorch's maintained exporter and its default since 2.9; the
TorchScript exporter (``dynamo=False``) still works in torch 2.13 but warns that it is deprecated. Quantization is
ONNX Runtime's own ``quantize_dynamic`` (int8 weights, activations quantized at run time: no calibration data).

Every export is checked before it is kept: ONNX Runtime and PyTorch run the same real sentences (padded batches, a
few masks per sentence for a masked LM) and

* fp32: the largest absolute difference of the logits (non-padding positions) must be at most ``1e-4``;
* int8: the argmax must agree on at least 99 % of the compared positions (masked positions for a masked LM, every
  word piece for token classification, every text for sequence classification).

Everything is written into a temporary directory beside ``onnx/`` and renamed at the end, so a failed check leaves
the model directory as it was. The measured numbers go into ``onnx/eliquare_onnx.json``
(:class:`hf_eliquare.runs.OnnxExportReport`), which the model card reads.

Command line (needs ``pip install 'hf_eliquare[onnx]'``; :mod:`hf_eliquare.cli.export`)::

    hf-eliquare export --model_dir DIR [--check_file sentences.txt] [--measure_speed]

(``python -m hf_eliquare.export`` is the same command.)
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import random
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, DataError, EliquareError
from .io import atomic_output_dir
from .runs import DistillationRun, FinetuneResult, OnnxExportReport

logger = logging.getLogger(__name__)

#: The folder (inside the model directory) and file names that ONNX Runtime users and transformers.js expect.
ONNX_DIR = OnnxExportReport.FOLDER
FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"
#: What the export measured (:class:`~hf_eliquare.runs.OnnxExportReport`, read by the model card).
REPORT_FILE = OnnxExportReport.FILE_NAME
#: Files of ``onnx/`` that a push publishes (external weights, ``.data`` / ``_data``, only for models over 2 GB).
ONNX_FILES = (
    FP32_FILE,
    *(FP32_FILE + suffix for suffix in (".data", "_data")),
    INT8_FILE,
    *(INT8_FILE + suffix for suffix in (".data", "_data")),
    REPORT_FILE,
)
#: Modules of the ``onnx`` extra.
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")
INSTALL_HINT = "pip install 'hf_eliquare[onnx]'"
#: Opset 18: the lowest the dynamo exporter emits; runs on ONNX Runtime >= 1.14 and onnxruntime-web.
DEFAULT_OPSET = 18
FP32_TOLERANCE = 1e-4
INT8_MIN_AGREEMENT = 0.99
#: ONNX protobufs cannot exceed 2 GB: larger models keep their weights in ``model.onnx_data``.
_PROTOBUF_LIMIT = 2**31 - 2**27

#: Task of a model directory, from the class in ``config.json``'s ``architectures``.
TASKS = {
    "ForMaskedLM": "fill-mask",
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "text-classification",
}

#: Sentences for the check when neither ``--check_file`` nor a file of the run is given: a few plain sentences in
#: the paper's languages (and English), written for this purpose. The one of the model's language is used first.
CHECK_SENTENCES: dict[str, list[str]] = {
    "sl": [
        "Vlada je včeraj sprejela nov zakon o varstvu okolja.",
        "V Ljubljani bo jutri sončno in toplo vreme.",
        "Otroci se po pouku radi igrajo v parku ob reki.",
        "Knjižnica bo zaradi prenove zaprta do konca meseca.",
        "Na tekmi je domača ekipa premagala goste s tremi goli.",
        "Mati je za kosilo skuhala juho in spekla kruh.",
        "Predsednik je obiskal šolo v manjšem kraju na Gorenjskem.",
        "Cene hrane so se v zadnjem letu močno zvišale.",
    ],
    "sw": [
        "Watoto wanacheza mpira uwanjani baada ya shule.",
        "Serikali imetangaza mpango mpya wa kuboresha elimu.",
        "Mvua kubwa imenyesha jijini Nairobi usiku wa jana.",
        "Mama yangu anapika chakula kitamu jikoni.",
        "Wakulima wanasubiri msimu wa mvua kuanza kupanda mahindi.",
        "Rais alihutubia taifa kuhusu uchumi wa nchi.",
    ],
    "fr": [
        "Le gouvernement a présenté hier un nouveau projet de loi.",
        "Les enfants jouent dans le jardin après l'école.",
        "Il fera beau et chaud demain dans le sud du pays.",
        "La bibliothèque municipale sera fermée pendant les travaux.",
        "Notre équipe a gagné le match de dimanche par deux buts à un.",
        "Elle lit un roman policier chaque soir avant de dormir.",
    ],
    "nl": [
        "De regering heeft gisteren een nieuwe wet aangenomen.",
        "De kinderen spelen na school in het park.",
        "Morgen wordt het zonnig en warm in het hele land.",
        "De bibliotheek is tot het einde van de maand gesloten.",
        "Mijn broer werkt al tien jaar als leraar in Utrecht.",
        "Het museum trekt elk jaar duizenden bezoekers.",
    ],
    "he": [
        "הממשלה אישרה אתמול חוק חדש.",
        "הילדים משחקים בפארק אחרי בית הספר.",
        "מחר יהיה מזג אוויר חם ושמשי.",
        "הספרייה תהיה סגורה עד סוף החודש.",
    ],
    "hi": [
        "सरकार ने कल एक नया कानून पारित किया।",
        "बच्चे स्कूल के बाद पार्क में खेलते हैं।",
        "कल मौसम साफ़ और गर्म रहेगा।",
        "पुस्तकालय महीने के अंत तक बंद रहेगा।",
    ],
    "en": [
        "The government passed a new law yesterday.",
        "The children play in the park after school.",
        "Tomorrow will be sunny and warm across the country.",
        "The library will be closed until the end of the month.",
    ],
}


class ExportCheckError(EliquareError):
    """The exported ONNX model does not reproduce the PyTorch model closely enough; nothing was written."""


# ----------------------------------------------------------------------------------------------------------------
# The optional extra


def require_onnx_extra() -> None:
    """Raise :class:`ConfigurationError` naming the extra when onnx / onnxruntime / onnxscript cannot be imported."""
    missing = []
    for name in ONNX_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigurationError(
            f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed. "
            f"Install the optional extra: {INSTALL_HINT}"
        )


# ----------------------------------------------------------------------------------------------------------------
# What is exported


def model_task(model_dir: str | os.PathLike) -> str:
    """``fill-mask``, ``token-classification`` or ``text-classification``, from ``config.json``'s architecture."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ConfigurationError(
            f"{str(model_dir)!r} holds no config.json; pass the directory of a saved student or fine-tuned model."
        )
    try:
        architectures = json.loads(path.read_text(encoding="utf-8")).get("architectures") or []
    except json.JSONDecodeError as err:
        raise DataError(f"{str(path)!r} is not valid JSON ({err}).") from None
    for suffix, task in TASKS.items():
        if architectures and architectures[0].endswith(suffix):
            return task
    raise ConfigurationError(
        f"{str(model_dir)!r} holds a {architectures[0] if architectures else 'model without architectures'}; ONNX "
        "export supports *ForMaskedLM students and *ForTokenClassification / *ForSequenceClassification task models."
    )


def load_for_export(model_dir: str | os.PathLike):
    """``(model in eval mode, tokenizer, task)`` of a model directory, through :mod:`hf_eliquare.loading`."""
    from transformers import (
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    from .loading import check_tokenizer_matches, load_model, load_tokenizer

    task = model_task(model_dir)
    auto = {
        "fill-mask": AutoModelForMaskedLM,
        "token-classification": AutoModelForTokenClassification,
        "text-classification": AutoModelForSequenceClassification,
    }[task]
    if not (Path(model_dir) / "tokenizer_config.json").is_file():
        raise ConfigurationError(
            f"{str(model_dir)!r} holds no tokenizer (tokenizer_config.json); the export checks the model on real "
            "sentences and needs it. Save it with tokenizer.save_pretrained(DIR)."
        )
    model = load_model(model_dir, auto).eval()
    tokenizer = load_tokenizer(model_dir)
    check_tokenizer_matches(tokenizer, model.config.vocab_size)
    return model, tokenizer, task


def onnx_input_names(model, tokenizer) -> list[str]:
    """The inputs the tokenizer produces and the model takes: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]
    return [name for name in names if name in tokenizer.model_input_names or name == "attention_mask"]


def _logits_module(model, input_names: Sequence[str]):
    """A module whose forward takes exactly ``input_names`` (as keywords) and returns the logits tensor alone."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            return self.model(**inputs).logits

    if not set(input_names) <= {"input_ids", "attention_mask", "token_type_ids"}:
        raise ConfigurationError(f"Unexpected model inputs {list(input_names)}.")
    return LogitsOnly().eval()


def _example_inputs(tokenizer, input_names: Sequence[str]) -> dict:
    """A padded batch of 2 × 16 (not 1: the exporter would fix a size-1 axis)."""
    import torch

    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special][:50] or [0]
    input_ids = torch.tensor([[ids[(3 * j + k) % len(ids)] for j in range(16)] for k in range(2)])
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 11:] = 0
    input_ids[1, 11:] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}
    return {name: inputs[name] for name in input_names}


def export_fp32(model, tokenizer, path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> list[str]:
    """Export ``model`` to ``path`` with ``torch.onnx.export(dynamo=True)``; return the input names.

    Axes 0 and 1 of every input (and of ``logits``) are dynamic, named ``batch_size`` and ``sequence_length`` as in
    Optimum's exports. Models over ~2 GB keep their weights in ``<path>.data`` (ONNX external data).
    """
    import torch

    input_names = onnx_input_names(model, tokenizer)
    module = _logits_module(model, input_names)
    inputs = _example_inputs(tokenizer, input_names)
    batch = torch.export.Dim("batch_size")
    length = torch.export.Dim("sequence_length", max=_max_length(model))
    dynamic_shapes = {name: {0: batch, 1: length} for name in input_names}
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    for name in ("onnx_ir", "onnxscript"):  # their optimizer logs every folded constant at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The exporter warns that several inputs share the same axis names: that is what we want.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        program = torch.onnx.export(
            module,
            (),
            kwargs=inputs,
            input_names=list(input_names),
            output_names=["logits"],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            dynamo=True,
            external_data=weight_bytes > _PROTOBUF_LIMIT,
            verbose=False,
        )
    program.save(str(path), external_data=weight_bytes > _PROTOBUF_LIMIT)
    return list(input_names)


def _max_length(model) -> int | None:
    positions = getattr(model.config, "max_position_embeddings", None)
    if not positions:
        return None
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= (model.config.pad_token_id or 0) + 1  # RoBERTa's positions start after the padding index
    return max(positions, 17)


def quantize_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, per_channel: bool = False) -> None:
    """Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``): int8 weights of MatMul/Gemm,
    activations quantized per call from their own range, so no calibration data is needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = any(Path(str(fp32_path) + suffix).exists() for suffix in (".data", "_data"))
    root = logging.getLogger()  # ORT logs "Please consider to run pre-processing" on the root logger
    previous, root.disabled = root.disabled, True
    try:
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            use_external_data_format=external,
        )
    finally:
        root.disabled = previous


def ort_session(path: str | os.PathLike, threads: int | None = None, spinning: bool | None = None):
    """An ONNX Runtime CPU session with all graph optimizations (ONNX Runtime's default). ``spinning=False`` makes
    idle intra-op threads sleep instead of spin, as ``OMP_WAIT_POLICY=PASSIVE`` does for PyTorch on a shared machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------------------------------------------
# The check against PyTorch


def check_sentences(
    model_dir: str | os.PathLike, check_file: str | os.PathLike | None = None, max_sentences: int = 64
) -> tuple[list[str], str]:
    """Real sentences for the check and where they come from.

    ``check_file`` (plain or .gz text, one sentence per line) first; else the built-in sentences of the model's
    language (``lang`` of ``eliquare_run.json`` / ``all_results.json``) followed by the other languages'.
    """
    if check_file:
        from .data import iter_text_lines

        path = Path(check_file)
        if not path.is_file():
            raise DataError(f"--check_file {str(check_file)!r} does not exist; pass a text file, one sentence a line.")
        sentences = []
        for line in iter_text_lines(path, role="--check_file"):
            line = line.strip()
            if line:
                sentences.append(line)
            if len(sentences) >= max_sentences:
                break
        if not sentences:
            raise DataError(f"--check_file {str(check_file)!r} holds no text.")
        return sentences, str(check_file)
    lang = None
    for summary in (DistillationRun, FinetuneResult):
        try:
            lang = summary.load(Path(model_dir) / summary.FILE_NAME).lang
        except DataError:  # absent or unreadable: the language is only a preference here
            continue
        if lang:
            break
    order = ([lang] if lang in CHECK_SENTENCES else []) + [code for code in CHECK_SENTENCES if code != lang]
    sentences = [sentence for code in order for sentence in CHECK_SENTENCES[code]][:max_sentences]
    return sentences, f"hf_eliquare.export.CHECK_SENTENCES ({', '.join(order)})"


def _batches(tokenizer, sentences: Sequence[str], task: str, input_names: Sequence[str], rounds: int, seed: int):
    """Padded numpy batches of the sentences and the boolean mask of the positions whose argmax is compared.

    Masked LM: ``rounds`` copies of every sentence, each with 15 % of its word pieces (at least one) replaced by the
    mask token; compared at those positions. Token classification: every non-special, non-padding position.
    Sequence classification: one position per text.
    """
    import numpy as np

    rng = random.Random(seed)
    encoded = tokenizer(list(sentences), truncation=True, max_length=128)["input_ids"]
    special = set(tokenizer.all_special_ids)
    rows, compared = [], []
    for ids in encoded:
        candidates = [i for i, token in enumerate(ids) if token not in special]
        if task == "fill-mask":
            if tokenizer.mask_token_id is None:
                raise ConfigurationError("The tokenizer has no mask token; a masked LM cannot be checked without one.")
            for _ in range(rounds):
                chosen = set(rng.sample(candidates, max(1, round(0.15 * len(candidates))))) if candidates else set()
                rows.append([tokenizer.mask_token_id if i in chosen else t for i, t in enumerate(ids)])
                compared.append([i in chosen for i in range(len(ids))])
        else:
            rows.append(list(ids))
            compared.append([i in set(candidates) for i in range(len(ids))])
    batches = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(rows), 16):
        chunk, flags = rows[start : start + 16], compared[start : start + 16]
        width = max(len(r) for r in chunk)
        input_ids = np.full((len(chunk), width), pad, dtype=np.int64)
        attention_mask = np.zeros((len(chunk), width), dtype=np.int64)
        where = np.zeros((len(chunk), width), dtype=bool)
        for i, (row, flag) in enumerate(zip(chunk, flags)):
            input_ids[i, : len(row)] = row
            attention_mask[i, : len(row)] = 1
            where[i, : len(row)] = flag
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        batches.append(({name: inputs[name] for name in input_names}, where))
    return batches


def compare_with_pytorch(
    model, sessions: dict[str, Any], tokenizer, sentences: Sequence[str], task: str, input_names: Sequence[str],
    rounds: int = 4, seed: int = 0,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Run PyTorch and every ONNX Runtime session on the same batches; per session: the largest absolute logit
    difference over non-padding positions, and the share of compared positions with the same argmax."""
    import numpy as np
    import torch

    batches = _batches(tokenizer, sentences, task, input_names, rounds, seed)
    stats = {name: {"max_abs_diff": 0.0, "agree": 0, "positions": 0} for name in sessions}
    with torch.inference_mode():
        for inputs, where in batches:
            reference = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.float().numpy()
            real = inputs["attention_mask"].astype(bool)
            if task == "text-classification":  # one row of logits per text
                real, where = np.ones(len(reference), dtype=bool), np.ones(len(reference), dtype=bool)
            for name, session in sessions.items():
                (logits,) = session.run(["logits"], inputs)
                diff = float(np.abs(logits[real] - reference[real]).max())
                stats[name]["max_abs_diff"] = max(stats[name]["max_abs_diff"], diff)
                same = logits.argmax(-1) == reference.argmax(-1)
                stats[name]["agree"] += int(same[where].sum())
                stats[name]["positions"] += int(where.sum())
    return {
        name: {
            "max_abs_diff": s["max_abs_diff"],
            "argmax_agreement": s["agree"] / s["positions"] if s["positions"] else float("nan"),
            "positions": s["positions"],
        }
        for name, s in stats.items()
    }


# ----------------------------------------------------------------------------------------------------------------
# Speed


def _token_batch(tokenizer, texts: Sequence[str], batch: int, length: int, input_names: Sequence[str]) -> dict:
    """``batch`` × ``length`` numpy inputs cut from the texts (repeated as needed), no padding."""
    import numpy as np

    pieces = [t for text in texts for t in tokenizer(text, add_special_tokens=False)["input_ids"]] or [0]
    while len(pieces) < batch * (length - 2):
        pieces = pieces + pieces
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    rows = [[cls, *pieces[i * (length - 2) : (i + 1) * (length - 2)], sep] for i in range(batch)]
    input_ids = np.array(rows, dtype=np.int64)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": np.ones_like(input_ids),
        "token_type_ids": np.zeros_like(input_ids),
    }
    return {name: inputs[name] for name in input_names}


def time_runtimes(
    model, sessions: dict[str, Any], tokenizer, texts: Sequence[str], input_names: Sequence[str],
    latency_shape: tuple[int, int] = (1, 32), throughput_shape: tuple[int, int] = (32, 128),
    latency_repeats: int = 20, throughput_repeats: int = 3,
) -> list[dict[str, Any]]:  # fmt: skip
    """Latency (median ms per call at ``latency_shape``) and throughput (sequences/s at ``throughput_shape``, median
    call) of PyTorch fp32 (``torch.inference_mode``) and each ONNX Runtime session; one warm-up call each. The
    runtimes alternate call by call, so a change of machine load hits them alike."""
    import torch

    runners = {"PyTorch fp32": None, **sessions}
    rows = {name: {"runtime": name, "latency_ms": [], "throughput_s": [], "cpu_s": []} for name in runners}
    for key, shape, repeats in (
        ("latency_ms", latency_shape, latency_repeats),
        ("throughput_s", throughput_shape, throughput_repeats),
    ):
        inputs = _token_batch(tokenizer, texts, *shape, input_names)
        torch_inputs = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            for _ in range(repeats + 1):  # the first round is the warm-up
                for name, session in runners.items():
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if session is None:
                        model(**torch_inputs)
                    else:
                        session.run(["logits"], inputs)
                    rows[name][key].append(time.perf_counter() - start)
                    if key == "throughput_s":
                        rows[name]["cpu_s"].append(time.process_time() - cpu_start)
    results = []
    for name, row in rows.items():
        latency = statistics.median(row["latency_ms"][1:]) * 1000
        call = statistics.median(row["throughput_s"][1:])
        results.append(
            {
                "runtime": name,
                "latency_ms": round(latency, 2),
                "latency_shape": list(latency_shape),
                "throughput_seq_per_s": round(throughput_shape[0] / call, 2),
                "throughput_tokens_per_s": round(throughput_shape[0] * throughput_shape[1] / call, 1),
                "throughput_shape": list(throughput_shape),
                "throughput_runs_s": [round(x, 4) for x in row["throughput_s"][1:]],
                "throughput_cpu_s": round(statistics.median(row["cpu_s"][1:]), 4),  # process CPU time, all threads
            }
        )
    base, base_cpu = results[0]["throughput_seq_per_s"], results[0]["throughput_cpu_s"]
    for row in results:
        row["throughput_vs_pytorch"] = round(row["throughput_seq_per_s"] / base, 3)
        row["cpu_time_speedup_vs_pytorch"] = (
            round(base_cpu / row["throughput_cpu_s"], 3) if row["throughput_cpu_s"] else None
        )
    return results


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} CPU cores"


# ----------------------------------------------------------------------------------------------------------------
# The export


def export_onnx(
    model_dir: str | os.PathLike,
    check_file: str | os.PathLike | None = None,
    check_sentences_max: int = 64,
    quantize: bool = True,
    per_channel: bool = False,
    fp32_tolerance: float = FP32_TOLERANCE,
    int8_min_agreement: float = INT8_MIN_AGREEMENT,
    measure_speed: bool = False,
    opset: int = DEFAULT_OPSET,
    output_dir: str | os.PathLike | None = None,
) -> OnnxExportReport:
    """Export, quantize and check the model of ``model_dir`` into ``<output_dir or model_dir>/onnx``; return the report
    (also written as ``onnx/eliquare_onnx.json``).

    Raises :class:`ConfigurationError` when the ``onnx`` extra is missing or the directory holds no supported model,
    and :class:`ExportCheckError` when ONNX Runtime disagrees with PyTorch beyond the limits; then nothing is written
    (an existing ``onnx/`` stays as it was). On success ``onnx/`` is replaced as a whole.
    """
    require_onnx_extra()
    import onnxruntime
    import torch

    started = time.perf_counter()
    model, tokenizer, task = load_for_export(model_dir)
    sentences, source = check_sentences(model_dir, check_file, check_sentences_max)
    target = Path(output_dir or model_dir) / ONNX_DIR
    with atomic_output_dir(target) as tmp:
        logger.info("Exporting %s (%s) to ONNX with torch.onnx.export(dynamo=True)", model_dir, task)
        input_names = export_fp32(model, tokenizer, tmp / FP32_FILE, opset=opset)
        sessions = {"ONNX Runtime fp32": ort_session(tmp / FP32_FILE)}
        if quantize:
            quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE, per_channel=per_channel)
            sessions["ONNX Runtime int8"] = ort_session(tmp / INT8_FILE)
        check = compare_with_pytorch(model, sessions, tokenizer, sentences, task, input_names)
        fp32 = check["ONNX Runtime fp32"]
        compared = {"fill-mask": "masked positions", "token-classification": "word pieces"}.get(task, "texts")
        logger.info(
            "fp32: max |ORT − PyTorch| = %.2e on the logits, argmax agreement %.4f on %d %s",
            fp32["max_abs_diff"], fp32["argmax_agreement"], fp32["positions"], compared,
        )  # fmt: skip
        if not fp32["max_abs_diff"] <= fp32_tolerance:
            raise ExportCheckError(
                f"The fp32 ONNX model differs from PyTorch by up to {fp32['max_abs_diff']:.3g} on the logits "
                f"(allowed: {fp32_tolerance:g}); nothing was written. Report it with the model's config.json, or "
                "try another --opset."
            )
        if quantize:
            int8 = check["ONNX Runtime int8"]
            logger.info(
                "int8: argmax agreement with PyTorch %.4f on %d %s (max |diff| %.3g)",
                int8["argmax_agreement"], int8["positions"], compared, int8["max_abs_diff"],
            )  # fmt: skip
            if not int8["argmax_agreement"] >= int8_min_agreement:
                raise ExportCheckError(
                    f"The int8 ONNX model agrees with PyTorch on the argmax at only {int8['argmax_agreement']:.2%} of "
                    f"{int8['positions']} {compared} (required: {int8_min_agreement:.0%}); nothing was written. "
                    "Accept it with --int8_min_agreement LOWER, try --per_channel true, or export fp32 only with "
                    "--quantize false."
                )
        speed = None
        if measure_speed:
            logger.info("Timing PyTorch fp32 and ONNX Runtime (batch 1 × 32 latency, batch 32 × 128 throughput)")
            speed = {
                "machine": machine_description(),
                "torch_threads": torch.get_num_threads(),
                "rows": time_runtimes(model, sessions, tokenizer, sentences, input_names),
            }
        files = {}
        for name in sorted(os.listdir(tmp)):
            precision = "int8 (dynamic quantization)" if name.startswith("model_quantized") else "fp32"
            files[f"{ONNX_DIR}/{name}"] = {"bytes": (tmp / name).stat().st_size, "precision": precision}
        report = OnnxExportReport(
            generator=_generator(),
            task=task,
            architecture=type(model).__name__,
            exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
            onnxruntime=onnxruntime.__version__,
            opset=opset,
            inputs=input_names,
            outputs=["logits"],
            dynamic_axes=["batch_size", "sequence_length"],
            files=files,
            quantization=(
                {
                    "method": "onnxruntime.quantization.quantize_dynamic",
                    "weight_type": "QInt8",
                    "per_channel": per_channel,
                }
                if quantize
                else None
            ),
            check={
                "sentences": len(sentences),
                "source": source,
                "compared": compared,
                "fp32_tolerance": fp32_tolerance,
                "int8_min_agreement": int8_min_agreement if quantize else None,
                "results": {name.replace("ONNX Runtime ", ""): values for name, values in check.items()},
            },
            speed=speed,
            export_seconds=round(time.perf_counter() - started, 1),
        )
        report.save(tmp)
    logger.info("Wrote %s: %s", target, ", ".join(sorted(files)))
    return report


def _generator() -> str:
    from . import __version__

    return f"hf_eliquare {__version__}"


if __name__ == "__main__":  # ``python -m hf_eliquare.export``: the same as ``hf-eliquare export``
    from .cli import run_command
    from .cli.export import main

    run_command(main)
