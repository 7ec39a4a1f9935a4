"""The evaluation room: fine-tuning a model on downstream tasks the paper's way, and the Table 4 driver.

* :mod:`.tasks` — the registered tasks (``--task sl_pos``), the one task-type table, main metrics and data
  provenance;
* :mod:`.readers` — CoNLL-U / CoNLL / TSV / CSV / JSONL files and Hub datasets into plain examples;
* :mod:`.splits` — missing splits (seeded 80/10/10) and the label set;
* :mod:`.features` — sub-word alignment, windows over long sentences, predictions merged back per word;
* :mod:`.metrics` — seqeval NER, POS and classification metrics, offline;
* :mod:`.finetune` — :func:`run_finetune`, one model on one task;
* :mod:`.table` — :func:`run_eval_table`, models x tasks x seeds, with the Wilcoxon test against the teacher.
"""

from .finetune import FinetuneDataArguments, FinetuneModelArguments, FinetuneTrainingArguments, run_finetune
from .table import EvalTableArguments, aggregate_results, format_table4, run_eval_table, wilcoxon_vs_teacher
from .tasks import PAPER_TASKS, TASK_TYPES, TASKS, Task, TaskType, get_task

__all__ = [
    "EvalTableArguments",
    "FinetuneDataArguments",
    "FinetuneModelArguments",
    "FinetuneTrainingArguments",
    "PAPER_TASKS",
    "TASKS",
    "TASK_TYPES",
    "Task",
    "TaskType",
    "aggregate_results",
    "format_table4",
    "get_task",
    "run_eval_table",
    "run_finetune",
    "wilcoxon_vs_teacher",
]
