"""Shared fixtures: tiny models built from a config, real data from ../shared/data when present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a loaded 2-core machine spinning threads make every
# small op ~100x slower (measured: 16 ms instead of 0.04 ms per tiny matmul). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_DIR = ROOT / "examples" / "demo"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def demo_tokenizer():
    """The small WordPiece tokenizer shipped with the demo (real mBERT pieces, Slovene subset)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer")


def tiny_bert(vocab_size: int, layers: int = 4, hidden: int = 32, seed: int = 0, max_positions: int = 128):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForMaskedLM(config).eval()


def tiny_xlmr(vocab_size: int, layers: int = 4, hidden: int = 32, seed: int = 0):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=130,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return XLMRobertaForMaskedLM(config).eval()


_SYLLABLES = [
    "ka",
    "po",
    "li",
    "ne",
    "sta",
    "vo",
    "mi",
    "ra",
    "du",
    "je",
    "ko",
    "zi",
    "pre",
    "na",
    "lo",
    "se",
    "tu",
    "gra",
]


def synthetic_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-language text with a Zipf-like word distribution (no data files needed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(300)]
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    lines = []
    for _ in range(n_lines):
        sentence = " ".join(rng.choice(words, size=int(rng.integers(8, 25)), p=weights))
        lines.append(sentence[0].upper() + sentence[1:] + ".")
    return lines


def build_tiny_teacher(directory: Path, lines: list[str], layers: int = 4, hidden: int = 32, seed: int = 0) -> Path:
    """A WordPiece tokenizer trained on ``lines`` and a random BertForMaskedLM over it, saved like a Hub model."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    directory.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (directory / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(directory / "vocab.txt"), do_lower_case=False)
    tokenizer.save_pretrained(directory)
    model = tiny_bert(vocab_size=len(tokenizer), layers=layers, hidden=hidden, seed=seed)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_teacher_and_corpus(tmp_path_factory):
    """(teacher directory, training text file): self-contained, no ../shared needed."""
    root = tmp_path_factory.mktemp("tiny_teacher")
    lines = synthetic_corpus()
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return build_tiny_teacher(root / "teacher", lines), corpus
