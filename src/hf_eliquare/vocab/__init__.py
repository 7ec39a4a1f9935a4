"""VocabReduce: cut a multilingual vocabulary down to the sub-words one language actually uses.

Eliquare keeps every sub-word that occurs in at least ``min_sentence_fraction`` of the sentences of a
target-language corpus (the paper: 0.05 %), plus all special tokens. Four steps, each usable alone,
one module each:

1. :mod:`.counting` — :func:`count_sentence_occurrences`: document frequency of every token id
   (sentences containing it, not raw counts), with batched fast-tokenizer encoding (the corpus as
   :mod:`.corpus` reads it);
2. :mod:`.selection` — :func:`select_vocabulary`: the old ids to keep, in their NEW order (special
   tokens first, then ``keep_tokens``, then the rest in original id order), by one :class:`VocabSelection`;
3. :mod:`.tokenizer` — :func:`reduce_tokenizer`: a rebuilt fast tokenizer (``tokenizers`` WordPiece /
   Unigram / WordLevel model) with the same normalizer, pre-tokenizer, post-processor (ids remapped)
   and decoder;
4. :mod:`.model` — :func:`reduce_model_vocab`: input embeddings, MLM decoder weight and bias sliced,
   tying preserved.

:func:`reduce_vocab` (:mod:`.reduce`) does all of it and records provenance in
``config.eliquare["vocab_reduction"]``.

Exactness: a sentence whose original tokens are all kept is tokenised to the same strings (greedy
longest-match WordPiece and Viterbi Unigram both only ever pick among kept pieces, and a subset of the
vocabulary cannot offer a better choice), and the model gives the same hidden states and the same
logits at the kept columns. BPE vocabularies are refused (merges would need pruning).

Command line: ``hf-eliquare vocab --model PATH --corpus sl.txt.gz --output_dir DIR`` (also
``python -m hf_eliquare.vocab``), see :mod:`hf_eliquare.cli.vocab`.
"""

from .corpus import iter_corpus, iter_text_file
from .counting import batch_sentence_counts, count_sentence_occurrences
from .model import CONFIG_TOKEN_ID_ATTRIBUTES, reduce_model_vocab
from .reduce import reduce_vocab, reduce_vocab_with_counts
from .selection import VocabSelection, always_kept_ids, select_vocabulary
from .tokenizer import check_reducible, reduce_tokenizer, reduced_backend

__all__ = [
    "CONFIG_TOKEN_ID_ATTRIBUTES",
    "VocabSelection",
    "always_kept_ids",
    "batch_sentence_counts",
    "check_reducible",
    "count_sentence_occurrences",
    "iter_corpus",
    "iter_text_file",
    "reduce_model_vocab",
    "reduce_tokenizer",
    "reduce_vocab",
    "reduce_vocab_with_counts",
    "reduced_backend",
    "select_vocabulary",
]
