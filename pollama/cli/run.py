"""``pollama run``: the model is found (or the bundled one imported), then one answer is streamed
(non-interactive, through ``/api/generate``) or the interactive chat starts (``cli.repl``).

When no server answers, ``run`` starts ``pollama serve`` in the background itself (logging to
``~/.ollama/logs/server.log``) and waits for it, as Ollama's desktop app does on macOS and Windows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pollama.cli.attachments import AttachmentError, attach_images
from pollama.cli.bundled import import_bundled, is_bundled
from pollama.cli.client import Client, ConnectError, ResponseError
from pollama.cli.display import AnswerPrinter, print_summary, wrap_width
from pollama.config import Settings

__all__ = ["RunOptions", "ensure_model", "ensure_server", "request_body", "run_embedding", "run_once"]

SERVER_START_TIMEOUT = 60.0  # seconds
THINK_VALUES = ("true", "false", "high", "medium", "low", "max")


@dataclass
class RunOptions:
    model: str
    prompt: str = ""
    format: str = ""
    keep_alive: str | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    word_wrap: bool = True
    verbose: bool = False
    truncate: bool | None = None
    dimensions: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    system: str = ""
    multimodal: bool = False  # image paths in the prompt are attached (cli.attachments)


def request_body(**fields: Any) -> dict[str, Any]:
    """A request with only the fields that were given (``False`` is given; None, "" and {} are not)."""
    return {key: value for key, value in fields.items() if value is not None and value != "" and value != {}}


def parse_think(value: str | None) -> bool | str | None:
    if value is None:
        return None
    if value not in THINK_VALUES:
        raise ResponseError(f"invalid value for --think: {value!r} (must be true, false, high, medium, low, or max)")
    return {"true": True, "false": False}.get(value, value)


def ensure_server(client: Client, settings: Settings) -> None:
    """Make sure a server answers, starting ``pollama serve`` in the background if none does."""
    try:
        client.heartbeat()
        return
    except ConnectError:
        # A server started here would serve plain http (its TLS files are the server's business).
        if not settings.host.connectable().is_loopback() or settings.host.scheme == "https":
            raise
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "server.log").open("ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "pollama", "serve"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            client.heartbeat()
            return
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ensure_model(client: Client, name: str) -> dict[str, Any]:
    """The model's ``/api/show``; the bundled default model is imported on first use."""
    try:
        return client.show(name)
    except ResponseError as err:
        if err.status != 404 or not is_bundled(name) or not import_bundled(client):
            raise
    return client.show(name)


def run_once(client: Client, options: RunOptions, *, interactive_terminal: bool) -> dict[str, Any] | None:
    """Stream one ``/api/generate`` answer to stdout; its final line (None if cancelled)."""
    prompt, images = options.prompt, None
    if options.multimodal:
        try:
            found = attach_images(prompt)
        except AttachmentError as err:
            raise ResponseError(err.message) from None
        prompt, images = found.text, found.encoded() or None
    request = request_body(
        model=options.model, prompt=prompt, images=images, format=options.format, keep_alive=options.keep_alive,
        think=options.think, options=options.options, system=options.system,
    )  # fmt: skip
    printer = AnswerPrinter(
        width=wrap_width() if options.word_wrap and interactive_terminal else 0,
        hide_thinking=options.hide_thinking,
        plain=not interactive_terminal,
    )
    final = None
    try:
        for event in client.generate(request):
            printer.thinking(event.get("thinking", ""))
            printer.content(event.get("response", ""))
            if event.get("done"):
                final = event
    except KeyboardInterrupt:
        printer.finish()
        return None
    printer.finish()
    if prompt:  # what is left once the attached paths are taken out, as in Ollama
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if final is not None and options.verbose:
        print_summary(final)
    return final


def run_embedding(client: Client, options: RunOptions) -> None:
    """Embedding models print the first vector as one JSON array."""
    if not options.prompt:
        raise ResponseError('embedding models require input text. Usage: pollama run <name> "your text here"')
    request = request_body(
        model=options.model, input=options.prompt, keep_alive=options.keep_alive, truncate=options.truncate,
        dimensions=options.dimensions or None,
    )  # fmt: skip
    reply = client.embed(request)
    embeddings = reply.get("embeddings") or [[]]
    print(json.dumps(embeddings[0], separators=(",", ":")))
    if options.verbose:
        print_summary(reply)
