"""The downstream tasks of the paper's Table 3, by name (``--task sl_pos``).

Each task names its Hub dataset where one exists (loaded only when the Hub is reachable) and, where
the offline copy in ``../shared/data`` has it, local files. Explicit ``--train_file`` etc. always
override the task's files; the task still provides the type, the columns and the main metric.

Where the paper's dataset is not available offline a *substitute* task is registered beside it
(``in_paper=False``) and the paper task's ``note`` says so; nothing silently swaps datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigurationError

#: The environment variable that names the offline data copy (as ``--data_dir`` does).
DATA_DIR_ENV = "ELIQUARE_SHARED_DATA"
#: Where the offline data copy is looked for otherwise, relative to the working directory: ``../shared/data``
#: beside the directory the command runs in (the project's layout). Never relative to the installed package,
#: so ``--task`` resolves the same way from a source checkout and from site-packages.
DEFAULT_SHARED_DATA = Path("..") / "shared" / "data"


@dataclass(frozen=True)
class TaskType:
    """What a kind of task is, for everyone: readers, features, metrics, the table and the cards."""

    name: str  # "ner" | "pos" | "classification" (``--task_type``)
    main_metric: str  # picks the best checkpoint and fills the table
    token_level: bool  # one label per word (token classification) or per text
    pipeline_tag: str  # the Hub's task type on cards
    aliases: tuple[str, ...] = ()  # other names results files use for this kind of task


#: The one task-type table.
TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("ner", "f1", True, "token-classification", ("token-classification",)),
        TaskType("pos", "accuracy", True, "token-classification", ("upos",)),
        # The paper scores every task with F1: POS micro-F1 (= accuracy, one prediction per word), classification
        # macro-F1. A registered task can choose another (``Task.main_metric``: accuracy for Dutch DBRD).
        TaskType(
            "classification",
            "macro_f1",
            False,
            "text-classification",
            ("text-classification", "cls", "topic", "sentiment", "news", "sib200", "afrisenti"),
        ),
    )
}
#: The main metric per task type (a view of :data:`TASK_TYPES`).
MAIN_METRIC: dict[str, str] = {name: t.main_metric for name, t in TASK_TYPES.items()}
TOKEN_TASKS: tuple[str, ...] = tuple(name for name, t in TASK_TYPES.items() if t.token_level)


def get_task_type(name: str) -> TaskType:
    """The :class:`TaskType` called ``name`` (or one of its aliases); raises naming the known ones."""
    found = find_task_type(task_type=name)
    if found is None:
        raise ConfigurationError(f"Unknown task type {name!r}; use one of {', '.join(TASK_TYPES)}.")
    return found


def find_task_type(task_type: str | None = None, task: str | None = None) -> TaskType | None:
    """The task type of a run from its recorded ``task_type``, else its registered ``task``, else a task
    name that is itself a type or an alias (``"ner"``, ``"sib200"``). ``None`` when none says it."""
    for name in (task_type, task):
        if not name:
            continue
        key = name.lower()
        if key in TASK_TYPES:
            return TASK_TYPES[key]
        if name in TASKS:
            return TASK_TYPES[TASKS[name].task_type]
        for candidate in TASK_TYPES.values():
            if key in candidate.aliases:
                return candidate
    return None


def shared_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The offline data copy: ``data_dir`` (``--data_dir``), else ``$ELIQUARE_SHARED_DATA``, else
    ``../shared/data`` beside the working directory. An explicitly named directory must exist."""
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            origin = "--data_dir" if data_dir is not None else f"${DATA_DIR_ENV}"
            raise ConfigurationError(
                f"The data directory {str(path)!r} ({origin}) does not exist. Point it at the offline copy of the "
                "task data (the folder holding ud/, ner/, cls/), or unset it to use ../shared/data."
            )
        return path.resolve()
    return (Path.cwd() / DEFAULT_SHARED_DATA).resolve()


@dataclass(frozen=True)
class Task:
    name: str
    language: str
    task_type: str  # "ner" | "pos" | "classification"
    title: str  # column title in the Table 4 layout, e.g. "POS"
    paper_dataset: str
    hub_dataset: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None  # script datasets: their parquet export
    hub_text_column: str | None = None  # classification text / token-list column on the Hub
    hub_label_column: str | None = None
    local_files: dict[str, str] = field(default_factory=dict)  # split -> path relative to shared data
    label_column: str | None = None  # local files: CoNLL-U column (upos/xpos/ner) or TSV column
    text_column: str | None = None
    in_paper: bool = True
    note: str = ""
    #: Why the offline copy is *not* the paper's data (empty: it is a copy of the paper's dataset).
    local_differs: str = ""
    #: The score that selects the checkpoint and fills the tables; empty = the task type's
    #: (:data:`TASK_TYPES`: NER f1, POS accuracy = micro-F1, classification macro-F1).
    main_metric: str = ""

    def __post_init__(self):
        if not self.main_metric:
            object.__setattr__(self, "main_metric", MAIN_METRIC[self.task_type])

    def local_paths(self, root: str | os.PathLike | None = None) -> dict[str, str]:
        """Existing local split files under ``root`` (default: :func:`shared_data_dir`)."""
        base = shared_data_dir(root)
        out = {}
        for split, rel in self.local_files.items():
            path = base / rel
            if path.is_file():
                out[split] = str(path)
        return out


def _ud(lang: str, treebank: str, rel_dir: str | None, note: str = "", **kw) -> Task:
    files = {"validation": f"{rel_dir}/dev.conllu", "test": f"{rel_dir}/test.conllu"} if rel_dir else {}
    if rel_dir and kw.pop("has_train", False):
        files["train"] = f"{rel_dir}/train.conllu"
    return Task(
        name=kw.pop("name", f"{lang}_pos"),
        language=lang,
        task_type="pos",
        title="POS",
        paper_dataset=f"UD {treebank}",
        hub_dataset="universal-dependencies/universal_dependencies",
        hub_config=kw.pop("hub_config", None),
        hub_revision="refs/convert/parquet",
        hub_text_column="tokens",
        hub_label_column="upos",
        local_files=files,
        label_column="upos",
        note=note,
        **kw,
    )


def _sib(lang: str, folder: str) -> Task:
    return Task(
        name=f"{lang}_topic",
        language=lang,
        task_type="classification",
        title="topic",
        paper_dataset="SIB-200 (substitute, not in the paper)",
        hub_dataset="Davlan/sib200",
        hub_config=folder,
        hub_text_column="text",
        hub_label_column="category",
        local_files={
            s: f"cls/{lang}/sib200/{f}.tsv" for s, f in (("train", "train"), ("validation", "dev"), ("test", "test"))
        },
        text_column="text",
        label_column="category",
        in_paper=False,
        note="SIB-200 topic classification (7 classes), offline substitute for a sentence-level task.",
    )


_NO_TRAIN = "The offline UD copy has no train split: dev+test are pooled and re-split 80/10/10 (seeded)."

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        # --- Slovene: NER + UD POS
        Task(
            name="sl_ner",
            language="sl",
            task_type="ner",
            title="NER",
            paper_dataset="WikiANN (Rahimi et al. split)",
            hub_dataset="unimelb-nlp/wikiann",
            hub_config="sl",
            hub_text_column="tokens",
            hub_label_column="ner_tags",
            local_files={"validation": "ner/sl/dev.txt", "test": "ner/sl/test.txt"},
            note="WikiANN sl is not available offline; the local default is SSJ's MISC NER= tags "
            "(ner/sl, dev/test only, pooled and re-split 80/10/10).",
            local_differs="SSJ NER tags, not WikiANN",
        ),
        _ud("sl", "Slovenian-SSJ", "ud/sl", hub_config="sl_ssj", note=_NO_TRAIN),
        # --- Swahili: news genre + NER
        Task(
            name="sw_news",
            language="sw",
            task_type="classification",
            title="news",
            paper_dataset="Swahili news genre (Davis 2020, 6 classes)",
            hub_dataset="community-datasets/swahili_news",
            hub_revision="refs/convert/parquet",
            hub_text_column="text",
            hub_label_column="label",
            note="No offline copy; sw_topic (SIB-200) and sw_sentiment (AfriSenti) are local substitutes.",
        ),
        Task(
            name="sw_ner",
            language="sw",
            task_type="ner",
            title="NER",
            paper_dataset="MasakhaNER 1.0 (swa)",
            hub_dataset="masakhane/masakhaner",
            hub_config="swa",
            hub_revision="refs/convert/parquet",
            hub_text_column="tokens",
            hub_label_column="ner_tags",
            local_files={"train": "ner/sw/train.txt", "validation": "ner/sw/dev.txt", "test": "ner/sw/test.txt"},
        ),
        # --- French, Dutch, Hebrew: sentiment + UD POS
        Task(
            name="fr_sentiment",
            language="fr",
            task_type="classification",
            title="sentiment",
            paper_dataset="Allociné",
            hub_dataset="tblard/allocine",
            hub_text_column="review",
            hub_label_column="label",
            note="No offline copy; fr_topic (SIB-200) is a local substitute.",
        ),
        _ud(
            "fr",
            "French-GSD",
            "ud/fr",
            hub_config="fr_gsd",
            note=_NO_TRAIN + " A complete French treebank is at ud/fr/sequoia (task fr_pos_sequoia).",
        ),
        Task(
            name="nl_sentiment",
            language="nl",
            task_type="classification",
            title="sentiment",
            paper_dataset="DBRD (Dutch Book Reviews)",
            hub_dataset="benjaminvdb/dbrd",
            hub_text_column="text",
            hub_label_column="label",
            main_metric="accuracy",  # the paper reports accuracy for DBRD, F1 everywhere else
            note="No offline copy; nl_topic (SIB-200) is a local substitute.",
        ),
        _ud("nl", "Dutch-LassySmall", "ud/nl", hub_config="nl_lassysmall", note=_NO_TRAIN),
        Task(
            name="he_sentiment",
            language="he",
            task_type="classification",
            title="sentiment",
            paper_dataset="Hebrew sentiment (Amram et al. 2018)",
            hub_dataset="omilab/hebrew_sentiment",
            hub_revision="refs/convert/parquet",
            hub_text_column="text",
            hub_label_column="label",
            note="No offline copy and no local substitute.",
        ),
        _ud("he", "Hebrew-HTB", None, hub_config="he_htb", note="No offline copy (UD_Hebrew-HTB is absent)."),
        # --- Hindi: news + UD POS
        Task(
            name="hi_news",
            language="hi",
            task_type="classification",
            title="news",
            paper_dataset="BBC Hindi news (IndicGLUE bbca.hi)",
            hub_dataset="ai4bharat/indic_glue",
            hub_config="bbca.hi",
            hub_revision="refs/convert/parquet",
            hub_text_column="text",
            hub_label_column="label",
            note="No offline copy; hi_topic (SIB-200) is a local substitute.",
        ),
        _ud(
            "hi",
            "Hindi-HDTB",
            "ud/hi",
            hub_config="hi_hdtb",
            note=_NO_TRAIN + " The offline HDTB files are the 2015 UD v1 release.",
            local_differs="UD v1 (2015) release of HDTB",
        ),
        # --- Local substitutes (not in the paper)
        _ud(
            "fr",
            "French-Sequoia",
            "ud/fr/sequoia",
            name="fr_pos_sequoia",
            hub_config="fr_sequoia",
            has_train=True,
            in_paper=False,
            note="Complete French treebank (substitute for GSD's missing train).",
        ),
        _sib("sl", "slv_Latn"),
        _sib("sw", "swh_Latn"),
        _sib("fr", "fra_Latn"),
        _sib("nl", "nld_Latn"),
        _sib("hi", "hin_Deva"),
        Task(
            name="sw_sentiment",
            language="sw",
            task_type="classification",
            title="sentiment",
            paper_dataset="AfriSenti swa (substitute, not in the paper)",
            hub_dataset="shmuhammad/AfriSenti-twitter-sentiment",
            hub_config="swa",
            hub_text_column="tweet",
            hub_label_column="label",
            local_files={
                "train": "cls/sw/afrisenti/train.tsv",
                "validation": "cls/sw/afrisenti/dev.tsv",
                "test": "cls/sw/afrisenti/test.tsv",
            },
            text_column="tweet",
            label_column="label",
            in_paper=False,
        ),
    )
}

#: The paper's Table 3, in its order: two tasks per language.
PAPER_TASKS: dict[str, tuple[str, str]] = {
    "fr": ("fr_sentiment", "fr_pos"),
    "nl": ("nl_sentiment", "nl_pos"),
    "he": ("he_sentiment", "he_pos"),
    "hi": ("hi_news", "hi_pos"),
    "sl": ("sl_ner", "sl_pos"),
    "sw": ("sw_news", "sw_ner"),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown task {name!r}. Known tasks: {', '.join(sorted(TASKS))}. "
            "Or leave --task out and pass --task_type with --train_file/--validation_file/--test_file."
        ) from None


#: Provenance codes of an evaluation-table cell (``data_provenance(...)["code"]``).
PROVENANCE_CODES = {
    "H": "the paper's Hub dataset",
    "L": "a local copy of the paper's dataset",
    "S": "a substitute: not the paper's data",
    "F": "the user's own files or dataset",
    "R": "pooled dev+test (or all given splits) re-split 80/10/10, not the paper's split",
    "?": "not recorded",
}


def data_provenance(task: Task | None, source: dict, split_strategy: str) -> dict:
    """Where a run's data came from, and whether that differs from the paper.

    ``source``: ``{"files": {split: path}, "explicit_splits": [...]}`` or ``{"dataset_name": …}`` (as
    ``evaluation.finetune.resolve_data`` returns it); ``split_strategy``: ``"provided"`` or how missing splits were made.
    Returns ``{"origin", "code", "resplit", "differs_from_paper", "description"}``; ``code`` is one letter of
    :data:`PROVENANCE_CODES` (``+R`` appended when the splits were re-made).
    """
    if task is None or source.get("explicit_splits"):
        origin, code, why = "custom", "F", "user files" if source.get("files") else "user dataset"
    elif not task.in_paper:
        origin, code, why = "substitute", "S", f"substitute task ({task.paper_dataset})"
    elif "files" in source:
        if task.local_differs:
            origin, code, why = "substitute", "S", f"local substitute: {task.local_differs}"
        else:
            origin, code, why = "local_copy", "L", f"local copy of {task.paper_dataset}"
    elif source.get("dataset_name") == task.hub_dataset:
        origin, code, why = "hub", "H", f"{task.hub_dataset} (the paper's {task.paper_dataset})"
    else:
        origin, code, why = "custom", "F", f"dataset {source.get('dataset_name')!r}"
    resplit = split_strategy != "provided"
    if resplit:
        code += "+R"
        why += f"; {split_strategy}"
    return {
        "origin": origin,
        "code": code,
        "resplit": resplit,
        "differs_from_paper": origin not in ("hub", "local_copy") or resplit,
        "description": why,
    }
