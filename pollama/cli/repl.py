"""The interactive chat of ``pollama run`` (spec C.4): prompt_toolkit line editing and history,
``\"\"\"`` multi-line messages, slash commands with Ollama's messages, ``/api/chat`` with the
accumulated conversation. Ctrl+C cancels an answer being written, not the session; Ctrl+D leaves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory

from pollama.cli.attachments import AttachmentError, attach_images, is_multimodal, names_a_file
from pollama.cli.client import Client, ResponseError
from pollama.cli.display import AnswerPrinter, print_summary, wrap_width
from pollama.cli.run import RunOptions, ensure_model, request_body
from pollama.cli.show import render_show_info
from pollama.config import Settings
from pollama.model.options import OptionError, merge_parameter, parse_parameter

__all__ = ["chat_loop"]

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
HELP_FILES = "Use /path/to/file to include .jpg, .png, .webp images.\n"  # shown for multimodal models
HELP_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""
HELP_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
HELP_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit pollama (/bye)
"""


@dataclass
class Session:
    client: Client
    options: RunOptions
    info: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    prompt: PromptSession[str] | None = None
    history: FileHistory | InMemoryHistory | None = None  # where lines go while history is on


def chat_loop(client: Client, options: RunOptions, info: dict[str, Any], settings: Settings) -> None:
    session = Session(client, options, info)
    _load(session)
    session.history = FileHistory(str(_history_file(settings)))
    prompt: PromptSession[str] = PromptSession(history=InMemoryHistory() if settings.nohistory else session.history)
    session.prompt = prompt
    while True:
        try:
            line = prompt.prompt(">>> ", placeholder="Send a message (/? for help)")
        except KeyboardInterrupt:
            print("Use Ctrl + d or /bye to exit.")
            continue
        except EOFError:
            return
        if line.lstrip().startswith('"""'):
            whole = _multi_line(prompt, line.lstrip()[3:])
            if whole is None:
                continue
            line = whole
        elif line.startswith("/"):
            action = _command(session, line.strip())
            if action == "exit":
                return
            if action != "message":  # an image path, e.g. a file dropped into the terminal, is a message
                continue
        if line.strip():
            _send(session, line)


def _history_file(settings: Settings) -> Any:
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings.home / "history"


def _multi_line(prompt: PromptSession[str], first: str) -> str | None:
    lines = [first]
    text = first
    while not text.rstrip().endswith('"""'):
        try:
            text = prompt.prompt("... ")
        except KeyboardInterrupt:
            return None
        except EOFError:
            break
        lines.append(text)
    joined = "\n".join(lines).rstrip()
    return joined[:-3] if joined.endswith('"""') else joined


def _load(session: Session) -> None:
    """Load the model (an empty generate) and show the model's own message history."""
    request = request_body(model=session.options.model, keep_alive=session.options.keep_alive)
    for _event in session.client.generate(request):
        pass
    for message in session.info.get("messages") or []:
        if message.get("role") == "user":
            print(f">>> {message.get('content', '')}")
        elif message.get("role") == "assistant":
            print(f"{message.get('content', '')}\n")


def _send(session: Session, text: str) -> None:
    options = session.options
    message: dict[str, Any] = {"role": "user", "content": text}
    if is_multimodal(session.info):
        # As Ollama, a file that cannot be sent ends the chat with the error (cmd/interactive.go).
        try:
            found = attach_images(text)
        except AttachmentError as err:
            raise ResponseError(err.message) from None
        message["content"] = found.text  # may be empty: the images still go, as Ollama sends them
        if found.images:
            message["images"] = found.encoded()
    session.messages.append(message)
    request = request_body(
        model=options.model, messages=session.messages, format=options.format, keep_alive=options.keep_alive,
        think=options.think, options=session.parameters,
    )  # fmt: skip
    terminal = sys.stdout.isatty()
    printer = AnswerPrinter(
        width=wrap_width() if options.word_wrap and terminal else 0,
        hide_thinking=options.hide_thinking,
        plain=not terminal,
    )
    content: list[str] = []
    final = None
    try:
        for event in session.client.chat(request):
            message = event.get("message") or {}
            printer.thinking(message.get("thinking", ""))
            printer.content(message.get("content", ""))
            content.append(message.get("content", ""))
            if calls := message.get("tool_calls"):
                printer.tool_calls(calls)
            if event.get("done"):
                final = event
    except KeyboardInterrupt:
        printer.finish()
        print()
        session.messages.pop()  # the cancelled exchange is not part of the conversation
        return
    except ResponseError as err:
        printer.finish()
        session.messages.pop()
        print(f"Error: {err.message}", file=sys.stderr)
        return
    printer.finish()
    print("\n")
    session.messages.append({"role": "assistant", "content": "".join(content)})
    if final is not None and options.verbose:
        print_summary(final)


def _command(session: Session, line: str) -> str | None:
    words = line.split()
    name, args = words[0], words[1:]
    if name in ("/bye", "/exit"):
        return "exit"
    multimodal = is_multimodal(session.info)
    if name in ("/?", "/help"):
        topic = args[0] if args else ""
        general = HELP + HELP_FILES if multimodal else HELP
        print(
            {"set": HELP_SET, "show": HELP_SHOW, "shortcut": HELP_SHORTCUTS, "shortcuts": HELP_SHORTCUTS}.get(
                topic, general
            )
        )
    elif name == "/clear":
        session.messages = [m for m in session.messages if m["role"] == "system"][-1:]
        print("Cleared session context")
    elif name == "/set":
        _set(session, args, line)
    elif name == "/show":
        _show(session, args)
    elif name == "/load" and args:
        _switch(session, args[0])
    elif name == "/save" and args:
        _save(session, args[0])
    elif name in ("/load", "/save"):
        print(f"Usage:\n  {name} <modelname>")
    elif multimodal and names_a_file(line):
        return "message"
    else:
        print(f"Unknown command '{name}'. Type /? for help")
    return None


def _set(session: Session, args: list[str], line: str) -> None:
    options = session.options
    if not args:
        print(HELP_SET)
        return
    what = args[0]
    toggles = {
        "verbose": ("verbose", True, "Set 'verbose' mode."),
        "quiet": ("verbose", False, "Set 'quiet' mode."),
        "wordwrap": ("word_wrap", True, "Set 'wordwrap' mode."),
        "nowordwrap": ("word_wrap", False, "Set 'nowordwrap' mode."),
        "noformat": ("format", "", "Disabled format."),
        "nothink": ("think", False, "Set 'nothink' mode."),
    }
    if what in toggles:
        attribute, value, message = toggles[what]
        setattr(options, attribute, value)
        print(message)
    elif what in ("history", "nohistory"):
        if session.prompt is not None and session.history is not None:
            session.prompt.history = session.history if what == "history" else InMemoryHistory()
            session.prompt.default_buffer.history = session.prompt.history
        print(f"Set '{what}' mode.")
    elif what == "format":
        if args[1:] == ["json"]:
            options.format = "json"
            print("Set format to 'json' mode.")
        else:
            print("Invalid or missing format. For 'json' mode use '/set format json'")
    elif what == "think":
        options.think = args[1] if len(args) > 1 else True
        if "thinking" not in (session.info.get("capabilities") or []):
            print(f'warning: model "{options.model}" does not support thinking output')
        print(f"Set 'think' mode{f' to {args[1]!r}' if len(args) > 1 else ''}.")
    elif what == "system":
        text = line.split("system", 1)[1].strip().strip('"')
        if session.messages and session.messages[-1]["role"] == "system":
            session.messages[-1]["content"] = text
        else:
            session.messages.append({"role": "system", "content": text})
        print("Set system message.")
    elif what == "parameter":
        if len(args) < 3:
            print("Usage:\n  /set parameter <name> <value>")
            return
        try:
            values = [parse_parameter(args[1], value) for value in args[2:]]
        except OptionError as error:
            print(f'Couldn\'t set parameter: "{error}"')
            return
        for value in values:
            merge_parameter(session.parameters, args[1], value)
        print(f"Set parameter '{args[1]}' to '{', '.join(args[2:])}'")
    else:
        print(f"Unknown command '/set {what}'. Type /? for help")


def _show(session: Session, args: list[str]) -> None:
    info = session.client.show(session.options.model)
    topic = args[0] if args else ""
    missing = {
        "license": "No license was specified for this model.",
        "system": "No system message was specified for this model.",
        "template": "No prompt template was specified for this model.",
    }
    if topic in ("license", "system", "template", "modelfile"):
        print(info.get(topic) or missing.get(topic, ""))
    elif topic == "parameters":
        print("Model defined parameters:")
        print(info.get("parameters") or "No parameters were specified for this model.")
        if session.parameters:
            print("User defined parameters:")
            for key, value in session.parameters.items():
                print(f"{key:<30} {value}")
    elif topic == "info":
        print(render_show_info(info, verbose=False), end="")
    else:
        print(HELP_SHOW)


def _switch(session: Session, model: str) -> None:
    print(f"Loading model '{model}'")
    try:
        session.info = ensure_model(session.client, model)
    except ResponseError:
        print(f"Couldn't find model '{model}'")
        return
    session.options.model = model
    session.messages = []
    _load(session)


def _save(session: Session, model: str) -> None:
    body: dict[str, Any] = {"model": model, "from": session.options.model, "messages": session.messages}
    if system := next((m["content"] for m in reversed(session.messages) if m["role"] == "system"), ""):
        body["system"] = system
        body["messages"] = [m for m in session.messages if m["role"] != "system"]
    if session.parameters:
        body["parameters"] = session.parameters
    try:
        for _event in session.client.create(body):
            pass
    except ResponseError as err:
        print(f"error: {err.message}")
        return
    print(f"Created new model '{model}'")
