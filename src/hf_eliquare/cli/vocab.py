"""``hf-eliquare vocab`` (also ``python -m hf_eliquare.vocab``): VocabReduce a saved model to a corpus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigurationError
from ..io import atomic_output_dir, check_output_dir, check_writable
from . import parse_args, setup_logging


@dataclass
class VocabReductionArguments:
    """Arguments of ``hf-eliquare vocab``."""

    model: str = field(metadata={"help": "Model directory or Hub id (with its tokenizer)."})
    corpus: list[str] = field(metadata={"help": "Target-language text files (.txt, .gz; or .jsonl/.csv/.parquet)."})
    output_dir: str = field(metadata={"help": "Where to write the reduced model and tokenizer."})
    min_sentence_fraction: float = field(
        default=0.0005, metadata={"help": "Keep sub-words in at least this fraction of sentences (paper: 0.0005)."}
    )
    min_count: int | None = field(default=None, metadata={"help": "Instead: keep sub-words in at least N sentences."})
    max_vocab_size: int | None = field(default=None, metadata={"help": "Keep at most N tokens (most frequent)."})
    keep_tokens: list[str] = field(default_factory=list, metadata={"help": "Tokens always kept."})
    text_column: str = field(default="text", metadata={"help": "Text column of .jsonl/.csv/.parquet corpora."})
    batch_size: int = field(default=1000, metadata={"help": "Sentences per encode_batch call."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for counting (datasets.map)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing output_dir."})

    def __post_init__(self):
        from ..vocab import VocabSelection

        try:
            self.selection = VocabSelection(
                min_sentence_fraction=self.min_sentence_fraction,
                min_count=self.min_count,
                max_vocab_size=self.max_vocab_size,
                keep_tokens=tuple(self.keep_tokens),
            )
        except ConfigurationError as err:
            raise ConfigurationError(f"--{err}") from None
        if self.batch_size < 1:
            raise ConfigurationError(f"--batch_size must be at least 1, got {self.batch_size}.")
        missing = [c for c in self.corpus if not Path(c).is_file()]
        if missing:
            raise ConfigurationError(f"--corpus file(s) {missing} do not exist (or are not files). Check the paths.")


def main(argv: Sequence[str] | None = None) -> None:
    from ..loading import check_tokenizer_matches, load_model, load_tokenizer
    from ..vocab import check_reducible, reduce_vocab

    (args,) = parse_args(VocabReductionArguments, argv, prog="hf-eliquare vocab")
    setup_logging()
    check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, inputs=[args.model])
    check_writable(args.output_dir)
    tokenizer = load_tokenizer(args.model)
    check_reducible(tokenizer)
    model = load_model(args.model)
    check_tokenizer_matches(tokenizer, model.get_input_embeddings().weight.shape[0])
    before_vocab, before_params = model.get_input_embeddings().weight.shape[0], model.num_parameters()
    model, tokenizer = reduce_vocab(
        model,
        tokenizer,
        [Path(p) for p in args.corpus],
        args.selection,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        text_column=args.text_column,
    )
    after_vocab, after_params = model.get_input_embeddings().weight.shape[0], model.num_parameters()

    with atomic_output_dir(args.output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    sentences = model.config.eliquare["vocab_reduction"]["corpus_sentences"]
    print(f"corpus sentences: {sentences}")
    print(f"vocabulary: {before_vocab} -> {after_vocab} tokens ({after_vocab / before_vocab:.1%})")
    print(f"parameters: {before_params:,} -> {after_params:,} ({after_params / before_params:.1%})")
    print(f"saved to {args.output_dir}")
