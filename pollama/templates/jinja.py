"""Render a GGUF ``tokenizer.chat_template`` the way Hugging Face transformers' ``apply_chat_template`` does.

Chat templates in GGUF files are jinja templates written for transformers, so to
produce the prompt the model was trained on we reproduce transformers' renderer
(``transformers/utils/chat_template_utils.py``: ``_compile_jinja_template`` and
``render_jinja_template``, plus the input clean-up in
``PreTrainedTokenizerBase.apply_chat_template``):

* an ``ImmutableSandboxedEnvironment`` with ``trim_blocks``, ``lstrip_blocks``
  and the ``loopcontrols`` extension, since templates come from the Hub and are
  untrusted code;
* ``tojson`` replaced by plain ``json.dumps`` (no HTML escaping, non-ASCII kept);
* the globals ``raise_exception``, ``strftime_now``, a restricted ``dict`` and a
  ``namespace`` that refuses underscore-prefixed names;
* the ``{% generation %}`` block tag, which only marks assistant text for
  training masks and so renders its body unchanged here;
* message keys whose value is ``None`` dropped, every input rebuilt from plain
  JSON types, and a message's reasoning copied between ``thinking`` and
  ``reasoning_content``;
* ``messages``, ``tools``, ``documents`` and ``add_generation_prompt`` always
  passed (``tools`` and ``documents`` as ``None`` when absent), the special
  tokens next, and extra variables overriding the special tokens.

Beyond transformers, a render has the budgets of :class:`~pollama.config.Limits`
(the sandbox alone lets a template loop, call and write without end): steps,
counted per loop item, call and piece of output, and bytes of output, counted in
macros and ``set`` blocks too; ``*`` and ``**`` may not make a value past the
output limit.

Every failure while compiling or rendering surfaces as :class:`ChatTemplateError`
with a one-line, user-facing message.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
import jinja2.runtime
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pollama.config import Limits

__all__ = ["ChatTemplateError", "render_chat_template"]


class ChatTemplateError(Exception):
    """A chat template failed to compile or render; the message is fit to show a user."""


_DEFAULT_LIMITS = Limits()  # for callers without settings at hand


def render_chat_template(
    source: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    variables: dict[str, Any] | None = None,
    limits: Limits = _DEFAULT_LIMITS,
) -> str:
    """Render ``messages`` through the jinja chat template ``source``.

    ``variables`` are extra template variables (``enable_thinking``,
    ``documents``...); as in transformers they override ``bos_token`` and
    ``eos_token``, while ``messages``, ``tools`` and ``add_generation_prompt``
    always come from their own arguments. ``limits`` bound the render's steps and output.
    """
    try:
        template = _compile(source)
    except Exception as exc:
        raise ChatTemplateError(_summarise(exc)) from exc

    context: dict[str, Any] = {"documents": None, "bos_token": bos_token, "eos_token": eos_token}
    context.update(_plain(variables or {}))
    context.update(
        messages=_alias_reasoning(_plain(_drop_none(messages))),
        tools=_plain(tools),
        add_generation_prompt=add_generation_prompt,
    )
    budget = _BUDGET.set(_Budget(limits))
    try:
        return template.render(context)
    except ChatTemplateError:
        raise
    except Exception as exc:
        raise ChatTemplateError(_summarise(exc)) from exc
    finally:
        _BUDGET.reset(budget)


# --- budget -----------------------------------------------------------------------------------------------------


class _OverLimit(jinja2.TemplateRuntimeError):
    pass


class _Budget:
    """What one render has spent, against its limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.steps = 0
        self.written = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.template_max_steps:
            raise _OverLimit(f"chat template exceeds the limit of {self.limits.template_max_steps} steps")

    def write(self, text: str) -> None:
        self.step()
        self.written += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if self.written > self.limits.template_max_output:
            raise _OverLimit(f"chat template exceeds the limit of {self.limits.template_max_output} bytes of output")

    def allow(self, size: int) -> None:
        """Refuse to make a value of ``size`` bytes (about) past the output limit, before it is made."""
        if size > self.limits.template_max_output:
            raise _OverLimit(
                f"chat template makes a value larger than the limit of {self.limits.template_max_output} bytes"
            )


# The render's budget where the environment's hooks can reach it, yet template code cannot.
_BUDGET: ContextVar[_Budget] = ContextVar("chat_template_budget")


# --- environment ------------------------------------------------------------------------------------------------


class _Generation(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: transformers marks the span for assistant masks; we render it."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: jinja2.runtime.Macro) -> str:
        return caller()


def _raise_exception(message: Any) -> NoReturn:
    raise ChatTemplateError(str(message))


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # jinja's own tojson escapes <, >, & and ' for HTML, which would change the prompt the model was trained on.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _TemplateDict:
    # The builtin ``dict`` type would hand templates its class attributes to poke at; an instance offers only calls.
    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    # Namespace attributes are set from template code; underscore names could shadow CPython internals.
    # ``self`` is taken from ``args``, as jinja's Namespace does, so that ``namespace(self=...)`` still works.
    def __init__(*args: Any, **kwargs: Any) -> None:
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}"
            )


class _BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """Every call is a step, and ``*`` and ``**`` are checked before they make a value."""

    intercepted_binops = frozenset({"*", "**"})

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _BUDGET.get().step()
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        if _is_int(left) and _is_int(right):
            if operator == "*":
                budget.allow((left.bit_length() + right.bit_length()) // 8)
            elif operator == "**" and right > 0 and abs(left) > 1:
                budget.allow(right * abs(left).bit_length() // 8)
        elif operator == "*":
            sequence, count = (left, right) if _is_int(right) else (right, left)
            if isinstance(sequence, str | list | tuple) and _is_int(count):
                budget.allow(len(sequence) * count)
        return super().call_binop(context, operator, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@jinja2.pass_context  # needing the context keeps jinja from running it at compile time
def _finalize(_context: jinja2.runtime.Context, value: Any) -> str:
    text = str(value)
    _BUDGET.get().write(text)
    return text


@jinja2.pass_context  # as _finalize
def _counted_loop(_context: jinja2.runtime.Context, items: Any) -> Iterator[Any]:
    budget = _BUDGET.get()
    for item in items:
        budget.step()
        yield item


_COUNTED_LOOP = "counted loop"  # a name no template can write, so only _counted's rewrite applies it


def _environment() -> ImmutableSandboxedEnvironment:
    env = _BudgetedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols], finalize=_finalize
    )
    env.filters[_COUNTED_LOOP] = _counted_loop
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


# The immutable sandbox keeps templates from changing the environment, so one can serve every template.
_ENV = _environment()


@lru_cache
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(_counted(_ENV.parse(source)))


def _counted(tree: jinja2.nodes.Template) -> jinja2.nodes.Template:
    """``tree`` with each loop's items passed through the budget, and its literal text as constants, which (unlike
    template data) go through ``_finalize`` like any other output."""
    for loop in list(tree.find_all(jinja2.nodes.For)):
        loop.iter = jinja2.nodes.Filter(loop.iter, _COUNTED_LOOP, [], [], None, None, lineno=loop.iter.lineno)
    for output in tree.find_all(jinja2.nodes.Output):
        output.nodes = [
            jinja2.nodes.Const(node.data, lineno=node.lineno) if isinstance(node, jinja2.nodes.TemplateData) else node
            for node in output.nodes
        ]
    return tree


# --- inputs -----------------------------------------------------------------------------------------------------


def _drop_none(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # APIs send ``content: null`` or ``tool_calls: null``; templates test for a missing key, and would print "None".
    if not isinstance(messages, list | tuple) or not all(isinstance(message, Mapping) for message in messages):
        raise ChatTemplateError("template error: messages must be a list of objects")
    return [{key: value for key, value in message.items() if value is not None} for message in messages]


def _plain(value: Any) -> Any:
    """``value`` rebuilt from plain JSON types, anything else replaced by a ``"<TypeName>"`` placeholder.

    The sandbox only knows which attributes of the builtin types are dangerous, so rich objects (subclasses, images,
    arrays, models) must not reach template code.
    """
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    numpy = sys.modules.get("numpy")  # only a loaded numpy can have made a numpy scalar
    if numpy is not None and isinstance(value, numpy.generic):
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _alias_reasoning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Templates read a message's reasoning as ``reasoning_content`` (Qwen3, DeepSeek) or ``thinking`` (gpt-oss);
    # the key order matches transformers' because templates may iterate a message or dump it with tojson.
    aliased = []
    for message in messages:
        reasoning = next((message[key] for key in _REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased


# --- errors -----------------------------------------------------------------------------------------------------


def _summarise(exc: BaseException) -> str:
    """``template error: line N: message`` in one line, the line being the template's where it can be found."""
    lineno: int | None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        message, lineno = exc.message or "syntax error", exc.lineno
    else:
        message, lineno = str(exc), _template_line(exc.__traceback__)
        if isinstance(exc, jinja2.TemplateError):
            message = getattr(exc, "message", None) or message
        else:
            # A bare "division by zero" or "'x'" (KeyError) means little without the kind of error.
            message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    message = " ".join(message.split())
    return f"template error: line {lineno}: {message}" if lineno else f"template error: {message}"


def _template_line(tb: TracebackType | None) -> int | None:
    # jinja rewrites the traceback of a render error so its frames from template code carry template line numbers.
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno
