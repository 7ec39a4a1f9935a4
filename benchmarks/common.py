"""Shared pieces of the benchmarks: data paths, machine description, timing and memory helpers."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT = DATA / "tokenizers" / "bert-base-multilingual-cased"
SL_TEXT = DATA / "text" / "sl.txt.gz"
MIN_SENTENCE_FRACTION = 0.0005  # the paper's 0.05 %


def data_available() -> bool:
    return (MBERT / "tokenizer.json").is_file() and (MBERT / "config.json").is_file() and SL_TEXT.is_file()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def num_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def environment() -> dict:
    """Machine and library versions, for BENCHMARKS.md."""
    import tokenizers
    import torch
    import transformers

    flags = cpu_flags()
    return {
        "date": date.today().isoformat(),
        "cpu": cpu_model(),
        "cpus": num_cpus(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------- data


def slovene_sentences(max_sentences: int | None = None) -> list[str]:
    """The shared Slovene text split into sentences (as VocabReduce counts them)."""
    from .vocab_counting import load_sentences

    return load_sentences("sl", max_sentences)


def sentence_counts(tokenizer, sentences: list[str]) -> tuple[np.ndarray, int]:
    from hf_eliquare.vocab import count_sentence_occurrences

    return count_sentence_occurrences(tokenizer, sentences, show_progress=False)


def packed_texts(sentences: list[str], tokenizer, num: int, length: int) -> list[str]:
    """``num`` texts of consecutive sentences, each long enough to fill ``length`` tokens."""
    texts, current, current_len = [], [], 0
    for sentence in sentences:
        current.append(sentence)
        current_len += len(tokenizer(sentence, add_special_tokens=False)["input_ids"])
        if current_len >= length:
            texts.append(" ".join(current))
            current, current_len = [], 0
            if len(texts) == num:
                return texts
    raise ValueError(f"not enough text for {num} sequences of {length} tokens")


# ---------------------------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    return _status_field("VmRSS")


def peak_rss_bytes() -> int:
    return _status_field("VmHWM")


def _status_field(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return -1


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux ``clear_refs`` = 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples VmRSS every ``interval`` seconds in a thread; ``peak`` is the largest value seen.

    A cross-check of the kernel's VmHWM (torch releases the GIL in its kernels, so the thread runs).
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def collect() -> None:
    gc.collect()
    try:  # give freed heap pages back, so the baseline is not inflated by set-up garbage
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def gb(x: float) -> str:
    return f"{x / 2**30:.2f}"
