"""The Hub room: offline checks (here), model cards (:mod:`.cards`) and publishing (:mod:`.publish`).

Hub access fails fast and clearly when the Hub cannot be reached.

``from_pretrained("bert-base-multilingual-cased")`` on a machine without network retries for most
of a minute and then raises a generic error. Before any Hub call, hf_eliquare checks: a local
directory is used as it is; a Hub id is looked up in the local cache; only then is the Hub asked,
after a quick (seconds) reachability probe whose failure names the way out.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

from ..errors import OfflineError


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline_mode() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds."""
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_snapshot(repo_id: str, repo_type: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, repo_type=repo_type, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def require_hub(what: str, local_hint: str) -> None:
    """Raise :class:`OfflineError` unless the Hub can be reached. ``what`` names the thing needed,
    ``local_hint`` how to do without the Hub."""
    if hub_offline_mode():
        raise OfflineError(
            f"{what} needs the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set and it is not in the local cache. "
            f"{local_hint}"
        )
    if not hub_reachable():
        raise OfflineError(
            f"{what} needs the Hugging Face Hub ({hub_endpoint()}), which cannot be reached from this machine "
            f"and it is not in the local cache. {local_hint}"
        )


def looks_like_local_path(name_or_path: str) -> bool:
    """The one Hub-id-vs-path rule: an existing path, or a name that can only be a path (starts with ``.``,
    ``/`` or ``~``, or has more than one ``/``). Anything else is read as a Hub id (``name`` or ``org/name``)."""
    return (
        os.path.exists(name_or_path)
        or name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or "\\" in name_or_path
    )


def resolve_pretrained(name_or_path: str, what: str = "model") -> str:
    """Return a local directory or a Hub id that ``from_pretrained`` can load without hanging.

    Local directories (and cached Hub repos) are returned as paths; an uncached Hub id is returned
    unchanged only when the Hub is reachable, else :class:`OfflineError` explains what to do.
    """
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path):
        raise OfflineError(f"The {what} path {name_or_path!r} is a file; pass the directory that holds config.json.")
    if looks_like_local_path(name_or_path):
        raise OfflineError(
            f"The {what} directory {name_or_path!r} does not exist. Check the path "
            "(a Hub id looks like 'bert-base-multilingual-cased' or 'org/name')."
        )
    cached = _cached_snapshot(name_or_path, "model")
    if cached is not None:
        return cached
    require_hub(
        f"The {what} {name_or_path!r}",
        f"Download it where the Hub is reachable (`hf download {name_or_path} --local-dir DIR`) and pass the "
        "directory instead of the Hub id, or build a small model locally (see README, 'Offline use').",
    )
    return name_or_path
