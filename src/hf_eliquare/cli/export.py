"""``hf-eliquare export`` (also ``python -m hf_eliquare.export``): ONNX export of a saved student or task model.

Writes ``onnx/model.onnx`` (fp32) and ``onnx/model_quantized.onnx`` (dynamic int8), checked against PyTorch
(:mod:`hf_eliquare.export`), then regenerates the card so that it lists them. Needs
``pip install 'hf_eliquare[onnx]'``; ``--export_onnx`` of ``hf-eliquare distill`` and ``hf-eliquare publish``
run the same export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigurationError
from ..export import DEFAULT_OPSET, FP32_TOLERANCE, INT8_MIN_AGREEMENT, ONNX_DIR, export_onnx
from ..runs import OnnxExportReport
from . import parse_args, setup_logging


@dataclass
class OnnxExportArguments:
    """Arguments of ``hf-eliquare export`` (and what ``--export_onnx`` of distill / publish runs with defaults)."""

    model_dir: str = field(metadata={"help": "A saved student or fine-tuned model (config.json, weights, tokenizer)."})
    check_file: str | None = field(
        default=None,
        metadata={
            "help": "Text file (one sentence a line) for the ONNX Runtime vs PyTorch check (default: built in)."
        },
    )
    check_sentences: int = field(default=64, metadata={"help": "At most this many sentences are checked."})
    quantize: bool = field(default=True, metadata={"help": "Also write onnx/model_quantized.onnx (dynamic int8)."})
    per_channel: bool = field(default=False, metadata={"help": "int8: one scale per output channel."})
    fp32_tolerance: float = field(
        default=FP32_TOLERANCE, metadata={"help": "Largest allowed |ORT − PyTorch| on the fp32 logits."}
    )
    int8_min_agreement: float = field(
        default=INT8_MIN_AGREEMENT,
        metadata={"help": "Smallest allowed share of compared positions where int8 and PyTorch agree on the argmax."},
    )
    measure_speed: bool = field(
        default=False,
        metadata={"help": "Also time PyTorch / ORT fp32 / ORT int8 (batch 1 × 32 latency, 32 × 128 throughput)."},
    )
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset (the dynamo exporter needs >= 18)."})
    update_card: bool = field(
        default=True, metadata={"help": "Regenerate README.md (when present) so that it lists the ONNX files."}
    )
    eval_results: list[str] = field(
        default_factory=list, metadata={"help": "With --update_card: the all_results.json files the card shows."}
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "With --update_card: the card's title/loading id."}
    )

    def __post_init__(self):
        if self.opset < 18:
            raise ConfigurationError(f"--opset must be at least 18 (the dynamo exporter's lowest), got {self.opset}.")
        if not 0.0 <= self.int8_min_agreement <= 1.0:
            raise ConfigurationError(f"--int8_min_agreement must be in [0, 1], got {self.int8_min_agreement}.")
        if self.fp32_tolerance <= 0:
            raise ConfigurationError(f"--fp32_tolerance must be positive, got {self.fp32_tolerance}.")
        if self.check_sentences < 1:
            raise ConfigurationError(f"--check_sentences must be at least 1, got {self.check_sentences}.")


def export_from_args(args: OnnxExportArguments) -> OnnxExportReport:
    """Run :func:`~hf_eliquare.export.export_onnx` with parsed arguments, then regenerate the card when asked and
    present."""
    report = export_onnx(
        args.model_dir,
        check_file=args.check_file,
        check_sentences_max=args.check_sentences,
        quantize=args.quantize,
        per_channel=args.per_channel,
        fp32_tolerance=args.fp32_tolerance,
        int8_min_agreement=args.int8_min_agreement,
        measure_speed=args.measure_speed,
        opset=args.opset,
    )
    if args.update_card and (Path(args.model_dir) / "README.md").is_file():
        from ..hub.cards import write_model_card

        write_model_card(args.model_dir, eval_results=args.eval_results, hub_model_id=args.hub_model_id)
    return report


def main(argv: Sequence[str] | None = None) -> OnnxExportReport:
    (args,) = parse_args(OnnxExportArguments, argv, prog="hf-eliquare export")
    setup_logging()
    report = export_from_args(args)
    for name, values in report.check["results"].items():
        print(
            f"{name}: max |ORT − PyTorch| {values['max_abs_diff']:.2e}, argmax agreement "
            f"{values['argmax_agreement']:.4f} on {values['positions']} {report.check['compared']}"
        )
    for row in (report.speed or {}).get("rows", []):
        print(
            f"{row['runtime']}: {row['latency_ms']:.1f} ms at batch 1 × 32, {row['throughput_seq_per_s']:.1f} "
            f"sequences/s at batch 32 × 128 ({row['throughput_vs_pytorch']:.2f}× PyTorch)"
        )
    print(Path(args.model_dir) / ONNX_DIR)
    return report
