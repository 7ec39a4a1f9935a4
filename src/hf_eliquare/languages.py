"""The languages hf_eliquare knows by code, and where their Wikipedia lives on the Hub.

Any other Wikipedia language works too: pass its ``wikimedia/wikipedia`` config explicitly
(``--wikipedia_config 20231101.xx``) or bring local text with ``--train_file``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError

WIKIPEDIA_DATASET = "wikimedia/wikipedia"
WIKIPEDIA_DUMP = "20231101"


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, as Wikipedia uses it
    name: str

    @property
    def wikipedia_config(self) -> str:
        return f"{WIKIPEDIA_DUMP}.{self.code}"


#: The paper's six languages first, then a few more that mBERT and XLM-R cover well.
LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("fr", "French"),
        Language("nl", "Dutch"),
        Language("he", "Hebrew"),
        Language("hi", "Hindi"),
        Language("sl", "Slovene"),
        Language("sw", "Swahili"),
        Language("de", "German"),
        Language("hr", "Croatian"),
        Language("sk", "Slovak"),
        Language("cs", "Czech"),
        Language("fi", "Finnish"),
        Language("et", "Estonian"),
        Language("yo", "Yoruba"),
    )
}


def get_language(code: str) -> Language:
    """The registered :class:`Language` for ``code``; an unknown code raises with the known ones."""
    try:
        return LANGUAGES[code]
    except KeyError:
        known = ", ".join(sorted(LANGUAGES))
        raise ConfigurationError(
            f"Unknown language code {code!r}. Known codes: {known}. For any other Wikipedia language pass its "
            f"dataset config explicitly, e.g. `--lang {code} --wikipedia_config {WIKIPEDIA_DUMP}.{code}`, "
            "or use your own text with `--train_file FILE`."
        ) from None
