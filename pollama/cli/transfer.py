"""``pollama pull`` and ``pollama push``: follow a transfer's NDJSON progress as Ollama draws it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pollama.cli.client import Client, ResponseError, Unauthorized
from pollama.cli.progress import Bar, Progress, Spinner
from pollama.store.names import ModelName

__all__ = ["pull_with_progress", "push_with_progress"]

NOT_AUTHORIZED = "you are not authorized to push to this namespace, create the model under a namespace you own"


def follow(events: Iterator[dict[str, Any]], progress: Progress, *, pulling: bool) -> None:
    """One bar per digest, one spinner per status change."""
    bars: dict[str, Bar] = {}
    status = ""
    spinner: Spinner | None = None
    for event in events:
        digest = event.get("digest") or ""
        completed = int(event.get("completed") or 0)
        if digest:
            # A pull's first line per layer (completed 0) only announces it: no 0 % bars.
            if pulling and completed == 0:
                continue
            if spinner is not None:
                spinner.stop()
            bar = bars.get(digest)
            if bar is None:
                hexdigest = digest.removeprefix("sha256:").strip()[:12]
                label = f"pulling {hexdigest}:" if pulling else event.get("status") or f"pushing {hexdigest}..."
                bar = bars[digest] = progress.bar(label, int(event.get("total") or 0), completed)
            bar.set(completed)
        elif event.get("status", "") != status:
            status = event.get("status", "")
            spinner = progress.spin(status)


def pull_with_progress(client: Client, model: str, *, insecure: bool) -> None:
    with Progress() as progress:
        follow(client.pull(model, insecure=insecure), progress, pulling=True)


def push_with_progress(client: Client, model: str, *, insecure: bool) -> str:
    """Push ``model``; return where it can be found."""
    name = ModelName.parse(model)
    try:
        with Progress() as progress:
            follow(client.push(model, insecure=insecure), progress, pulling=False)
    except Unauthorized:
        raise  # this server's API key, not the registry's namespace
    except ResponseError as err:
        message = err.message.lower()
        if "access denied" in message or "unauthorized" in message:
            raise ResponseError(NOT_AUTHORIZED, err.status) from None
        raise
    if name.host.endswith((".ollama.ai", ".ollama.com")):
        return "https://ollama.com/" + name.display_shortest().removesuffix(":latest")
    return str(name)
