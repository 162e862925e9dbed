"""The messages between the server and a runner, as typed values.

``protocol`` frames them (one JSON object per line, fragmented when long); these classes are what
the objects mean. Every message turns into its wire object with ``to_wire()`` and back with
``from_wire()``; a request's wire object carries ``op``, an event's ``event``, and both carry the
request ``id`` beside their fields (``with_id``), which the classes themselves leave to the transport.

A completion's options come in two parts: ``Sampling``, Ollama's options that shape the text (the
chain of samplers, the seed, stop sequences, how many tokens), and ``Control``, what the server
asks of the run besides (a format's grammar, logprobs, context shift, the token context back).

Wire data that is not a known message, lacks a required field, has a field of the wrong type or
one no message has raises ``ValueError`` with a message saying which.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

__all__ = [
    "CancelRequest",
    "CompletionRequest",
    "ContentResult",
    "Control",
    "CountRequest",
    "CountResult",
    "DetokenizeRequest",
    "DoneEvent",
    "EmbedRequest",
    "EmbedResult",
    "ErrorEvent",
    "Event",
    "HealthReport",
    "HealthRequest",
    "ImageInput",
    "LoadFailed",
    "NO_IMAGE_INPUT",
    "Ready",
    "Request",
    "Sampling",
    "ShutdownRequest",
    "TokenEvent",
    "TokenizeRequest",
    "TokensResult",
    "decode_event",
    "decode_request",
    "with_id",
]

T = TypeVar("T")

# What a runner without a projector answers to images (Ollama's words).
NO_IMAGE_INPUT = "this model is missing data required for image input"
_MISSING: Any = object()


class _Fields:
    """Reads a wire object's fields with their types checked; ``done()`` refuses the fields left over."""

    def __init__(self, data: Any, what: str, ignored: tuple[str, ...] = ()) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"{what} must be an object, not {type(data).__name__}")
        self.what = what
        self.left = {key: value for key, value in data.items() if key not in ignored}

    def _take(self, name: str, default: Any, check: Callable[[Any], T], kind: str) -> T:
        if name not in self.left or (self.left[name] is None and default is not _MISSING):
            self.left.pop(name, None)
            if default is _MISSING:
                raise ValueError(f"{self.what} needs the field {name!r}")
            return default  # type: ignore[no-any-return]
        value = self.left.pop(name)
        try:
            return check(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{self.what}: {name!r} must be {kind}, not {value!r:.80}") from None

    def integer(self, name: str, default: Any = _MISSING) -> int:
        return self._take(name, default, _as_int, "an integer")

    def number(self, name: str, default: Any = _MISSING) -> float:
        return self._take(name, default, _as_float, "a number")

    def text(self, name: str, default: Any = _MISSING) -> str:
        return self._take(name, default, _as_str, "a string")

    def flag(self, name: str, default: Any = _MISSING) -> bool:
        return self._take(name, default, _as_bool, "a boolean")

    def optional_str(self, name: str) -> str | None:
        return self._take(name, None, _as_str, "a string")

    def optional_int(self, name: str) -> int | None:
        return self._take(name, None, _as_int, "an integer")

    def ints(self, name: str, default: Any = _MISSING) -> list[int]:
        return self._take(
            name, default, lambda value: [_as_int(item) for item in _as_list(value)], "a list of integers"
        )

    def floats(self, name: str, default: Any = _MISSING) -> list[float]:
        return self._take(
            name, default, lambda value: [_as_float(item) for item in _as_list(value)], "a list of numbers"
        )

    def strs(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        return self._take(name, default, _as_strs, "a list of strings")

    def objects(self, name: str) -> list[dict[str, Any]] | None:
        return self._take(name, None, _as_objects, "a list of objects")

    def bias(self, name: str) -> dict[int, float]:
        return self._take(name, {}, _as_bias, "an object of token ids and numbers")

    def done(self) -> None:
        if self.left:
            raise ValueError(f"{self.what} has unknown field(s): {', '.join(sorted(map(repr, self.left)))}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise TypeError
    return value


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError
    return float(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _as_list(value: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError
    return value


def _as_strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # one stop sequence given as a string
        return (value,)
    return tuple(_as_str(item) for item in _as_list(value))


def _as_objects(value: Any) -> list[dict[str, Any]]:
    items = list(_as_list(value))
    if not all(isinstance(item, dict) for item in items):
        raise TypeError
    return items


def _as_bias(value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise TypeError
    bias = {int(token): _as_float(amount) for token, amount in value.items()}
    if not all(math.isfinite(amount) for amount in bias.values()):
        raise ValueError
    return bias


# --- completion options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """The sampling options a runner uses, with Ollama's defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0  # 0 off, 1 Mirostat, 2 Mirostat 2.0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1  # below 0: a random seed
    num_predict: int = -1  # -1: no limit (ten contexts' worth); -2: fill the context
    num_keep: int = 4  # tokens kept at the start when the context shifts or a prompt is cut
    stop: tuple[str, ...] = ()
    logit_bias: Mapping[int, float] = field(default_factory=dict)  # token id → bias (the OpenAI API's)

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(item.name for item in fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Sampling:
        """The sampling options among a resolved Ollama options dict; other keys (and None values) are ignored.

        ValueError when one of them has the wrong type.
        """
        return cls.from_wire({name: value for name, value in options.items() if name in cls.names()})

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Sampling:
        read = _Fields(data, "sampling options")
        default = _DEFAULT_SAMPLING
        sampling = cls(
            temperature=read.number("temperature", default.temperature),
            top_k=read.integer("top_k", default.top_k),
            top_p=read.number("top_p", default.top_p),
            min_p=read.number("min_p", default.min_p),
            typical_p=read.number("typical_p", default.typical_p),
            repeat_last_n=read.integer("repeat_last_n", default.repeat_last_n),
            repeat_penalty=read.number("repeat_penalty", default.repeat_penalty),
            presence_penalty=read.number("presence_penalty", default.presence_penalty),
            frequency_penalty=read.number("frequency_penalty", default.frequency_penalty),
            mirostat=read.integer("mirostat", default.mirostat),
            mirostat_tau=read.number("mirostat_tau", default.mirostat_tau),
            mirostat_eta=read.number("mirostat_eta", default.mirostat_eta),
            seed=read.integer("seed", default.seed),
            num_predict=read.integer("num_predict", default.num_predict),
            num_keep=read.integer("num_keep", default.num_keep),
            stop=read.strs("stop", ()),
            logit_bias=read.bias("logit_bias"),
        )
        read.done()
        return sampling

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {item.name: getattr(self, item.name) for item in fields(self)}
        wire["stop"] = list(self.stop)
        if self.logit_bias:
            wire["logit_bias"] = {str(token): bias for token, bias in self.logit_bias.items()}
        else:
            del wire["logit_bias"]
        return wire


_DEFAULT_SAMPLING = Sampling()


@dataclass(frozen=True)
class Control:
    """What a completion asks of the run besides sampling."""

    grammar: str | None = None  # an llguidance grammar the answer must follow
    grammar_after: str = ""  # the grammar holds from after this text on (a thinking model's closing tag)
    grammar_opening: str = ""  # the text that opens the thinking, when the prompt did not
    grammar_fallback: str | None = None  # tried when ``grammar`` names tokens the model lacks
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True  # shift the context when it fills (else: stop with "length"; a long prompt fails)
    return_context: bool = False  # the done event carries the prompt's and answer's tokens

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(item.name for item in fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Control:
        """The control flags among ``options``; other keys are ignored."""
        return cls.from_wire({name: value for name, value in options.items() if name in cls.names()})

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Control:
        read = _Fields(data, "control flags")
        control = cls(
            grammar=read.optional_str("grammar") or None,
            grammar_after=read.text("grammar_after", ""),
            grammar_opening=read.text("grammar_opening", ""),
            grammar_fallback=read.optional_str("grammar_fallback") or None,
            logprobs=read.flag("logprobs", False),
            top_logprobs=read.integer("top_logprobs", 0),
            shift=read.flag("shift", True),
            return_context=read.flag("return_context", False),
        )
        read.done()
        return control

    def to_wire(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


# --- requests (server → runner) ----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """A decoded image: ``width`` × ``height`` pixels, 8-bit RGB, row by row (what mtmd's bitmaps hold)."""

    width: int
    height: int
    rgb: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or len(self.rgb) != self.width * self.height * 3:
            raise ValueError(
                f"an image of {self.width}x{self.height} RGB pixels needs {self.width * self.height * 3} bytes"
            )

    @classmethod
    def from_wire(cls, data: Any) -> ImageInput:
        read = _Fields(data, "an image")
        width, height, encoded = read.integer("width"), read.integer("height"), read.text("rgb")
        read.done()
        try:
            rgb = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError("an image's rgb must be base64") from None
        return cls(width, height, rgb)

    def to_wire(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "rgb": base64.b64encode(self.rgb).decode()}


@dataclass(frozen=True)
class CompletionRequest:
    """``images[N]`` goes where the prompt says ``[img-N]`` (Ollama's tags); an image no tag names is left out."""

    KIND: ClassVar[str] = "completion"
    prompt: str
    sampling: Sampling = field(default_factory=Sampling)
    control: Control = field(default_factory=Control)
    images: tuple[ImageInput, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CompletionRequest:
        read = _Fields(data, "a completion request", ("op", "id"))
        prompt = read.text("prompt")
        sampling = Sampling.from_wire(read._take("sampling", {}, _as_mapping, "an object"))
        control = Control.from_wire(read._take("control", {}, _as_mapping, "an object"))
        images = read._take("images", (), _as_list, "a list")
        read.done()
        return cls(prompt, sampling, control, tuple(ImageInput.from_wire(image) for image in images))

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "op": self.KIND,
            "prompt": self.prompt,
            "sampling": self.sampling.to_wire(),
            "control": self.control.to_wire(),
        }
        if self.images:
            wire["images"] = [image.to_wire() for image in self.images]
        return wire


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError
    return value


@dataclass(frozen=True)
class EmbedRequest:
    KIND: ClassVar[str] = "embed"
    content: str
    truncate: bool = True  # cut an input longer than the context (else: an error)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EmbedRequest:
        read = _Fields(data, "an embed request", ("op", "id"))
        request = cls(read.text("content"), read.flag("truncate", True))
        read.done()
        return request

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND, "content": self.content, "truncate": self.truncate}


@dataclass(frozen=True)
class TokenizeRequest:
    KIND: ClassVar[str] = "tokenize"
    content: str
    add_special: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TokenizeRequest:
        read = _Fields(data, "a tokenize request", ("op", "id"))
        request = cls(read.text("content"), read.flag("add_special", False))
        read.done()
        return request

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND, "content": self.content, "add_special": self.add_special}


@dataclass(frozen=True)
class CountRequest:
    """How many tokens ``content`` has, counted no further than ``limit``."""

    KIND: ClassVar[str] = "count"
    content: str
    limit: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CountRequest:
        read = _Fields(data, "a count request", ("op", "id"))
        request = cls(read.text("content"), read.integer("limit"))
        read.done()
        return request

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND, "content": self.content, "limit": self.limit}


@dataclass(frozen=True)
class DetokenizeRequest:
    KIND: ClassVar[str] = "detokenize"
    tokens: tuple[int, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> DetokenizeRequest:
        read = _Fields(data, "a detokenize request", ("op", "id"))
        request = cls(tuple(read.ints("tokens")))
        read.done()
        return request

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND, "tokens": list(self.tokens)}


@dataclass(frozen=True)
class _Bare:
    """A request with no fields of its own."""

    KIND: ClassVar[str] = ""

    @classmethod
    def from_wire(cls: type[_B], data: Mapping[str, Any]) -> _B:
        _Fields(data, f"a {cls.KIND} request", ("op", "id")).done()
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND}


_B = TypeVar("_B", bound=_Bare)


@dataclass(frozen=True)
class CancelRequest(_Bare):
    """Stop the completion of the same id and free its slot."""

    KIND: ClassVar[str] = "cancel"


@dataclass(frozen=True)
class HealthRequest(_Bare):
    KIND: ClassVar[str] = "health"


@dataclass(frozen=True)
class ShutdownRequest(_Bare):
    KIND: ClassVar[str] = "shutdown"


Request = (
    CompletionRequest | EmbedRequest | TokenizeRequest | CountRequest | DetokenizeRequest
    | CancelRequest | HealthRequest | ShutdownRequest
)  # fmt: skip
_REQUESTS: dict[str, Any] = {
    kind.KIND: kind
    for kind in (
        CompletionRequest, EmbedRequest, TokenizeRequest, CountRequest, DetokenizeRequest,
        CancelRequest, HealthRequest, ShutdownRequest,
    )
}  # fmt: skip


def decode_request(data: Mapping[str, Any]) -> tuple[str, Request]:
    """A wire object from the server as ``(id, request)``; ValueError if it is none."""
    if not isinstance(data, Mapping):
        raise ValueError("a request must be an object")
    kind = _REQUESTS.get(data.get("op"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown operation {data.get('op')!r}")
    request_id = data.get("id", "")
    if not isinstance(request_id, str):
        raise ValueError(f"a request id must be a string, not {request_id!r:.80}")
    return request_id, kind.from_wire(data)


# --- events (runner → server) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The model is loaded: what the runner can do, sent once at start."""

    KIND: ClassVar[str] = "ready"
    n_ctx: int  # context per sequence
    n_ctx_train: int = 0
    num_parallel: int = 1
    weights_bytes: int = 0
    total_bytes: int = 0  # llama.cpp's buffers, all told (0: it did not say)
    vram_bytes: int = 0  # the part of them on GPUs
    gpu_offload: bool = False
    image_tokens: int = 0  # the positions an image takes (measured at load); 0: the model takes no images

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Ready:
        read = _Fields(data, "a ready event", ("event", "id"))
        ready = cls(
            n_ctx=read.integer("n_ctx"),
            n_ctx_train=read.integer("n_ctx_train", 0),
            num_parallel=read.integer("num_parallel", 1),
            weights_bytes=read.integer("weights_bytes", 0),
            total_bytes=read.integer("total_bytes", 0),
            vram_bytes=read.integer("vram_bytes", 0),
            gpu_offload=read.flag("gpu_offload", False),
            image_tokens=read.integer("image_tokens", 0),
        )
        read.done()
        return ready

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, **{item.name: getattr(self, item.name) for item in fields(self)}}


@dataclass(frozen=True)
class LoadFailed:
    """The model could not be loaded (the runner exits after saying so).

    ``status`` 4xx when a file the model names is at fault, not the runner (an adapter that does not fit).
    """

    KIND: ClassVar[str] = "load_error"
    error: str
    status: int = 500

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LoadFailed:
        read = _Fields(data, "a load_error event", ("event", "id"))
        event = cls(read.text("error"), read.integer("status", 500))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "error": self.error, "status": self.status}


@dataclass(frozen=True)
class TokenEvent:
    """New text of a completion (possibly empty when only ``logprobs`` are new)."""

    KIND: ClassVar[str] = "token"
    text: str
    logprobs: list[dict[str, Any]] | None = None  # {token, logprob, bytes, top_logprobs?} per token

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TokenEvent:
        read = _Fields(data, "a token event", ("event", "id"))
        event = cls(read.text("text", ""), read.objects("logprobs"))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"event": self.KIND, "text": self.text}
        if self.logprobs is not None:
            wire["logprobs"] = self.logprobs
        return wire


@dataclass(frozen=True)
class DoneEvent:
    """A completion's end: its last text, why it ended, and its counts (durations in nanoseconds)."""

    KIND: ClassVar[str] = "done"
    text: str
    done_reason: str  # "stop" or "length"
    prompt_eval_count: int  # the whole prompt, its cached part included (as Ollama counts)
    prompt_cached_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    context: list[int] | None = None  # the prompt's and answer's tokens, when ``return_context``

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> DoneEvent:
        read = _Fields(data, "a done event", ("event", "id"))
        event = cls(
            text=read.text("text", ""),
            done_reason=read.text("done_reason"),
            prompt_eval_count=read.integer("prompt_eval_count"),
            prompt_cached_count=read.integer("prompt_cached_count", 0),
            prompt_eval_duration=read.integer("prompt_eval_duration"),
            eval_count=read.integer("eval_count"),
            eval_duration=read.integer("eval_duration"),
            context=read.ints("context", None),
        )
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "event": self.KIND,
            "done_reason": self.done_reason,
            "text": self.text,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_cached_count": self.prompt_cached_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }
        if self.context is not None:
            wire["context"] = self.context
        return wire


@dataclass(frozen=True)
class ErrorEvent:
    """A request failed: ``status`` 4xx when its input was at fault, 5xx when the runner was.

    ``crash`` (with the runner's last ``output``) is set by the server side when the runner died of a
    crash signal before any decode finished.
    """

    KIND: ClassVar[str] = "error"
    error: str
    status: int = 500
    crash: str | None = None
    output: str = ""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ErrorEvent:
        read = _Fields(data, "an error event", ("event", "id"))
        event = cls(
            read.text("error"), read.integer("status", 500), read.optional_str("crash"), read.text("output", "")
        )
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"event": self.KIND, "status": self.status, "error": self.error}
        if self.crash is not None:
            wire.update(crash=self.crash, output=self.output)
        return wire


@dataclass(frozen=True)
class EmbedResult:
    KIND: ClassVar[str] = "embedding"
    embedding: list[float]
    prompt_eval_count: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EmbedResult:
        read = _Fields(data, "an embedding event", ("event", "id"))
        event = cls(read.floats("embedding"), read.integer("prompt_eval_count"))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "embedding": self.embedding, "prompt_eval_count": self.prompt_eval_count}


@dataclass(frozen=True)
class TokensResult:
    KIND: ClassVar[str] = "tokens"
    tokens: list[int]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TokensResult:
        read = _Fields(data, "a tokens event", ("event", "id"))
        event = cls(read.ints("tokens"))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "tokens": self.tokens}


@dataclass(frozen=True)
class CountResult:
    KIND: ClassVar[str] = "count"
    count: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CountResult:
        read = _Fields(data, "a count event", ("event", "id"))
        event = cls(read.integer("count"))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "count": self.count}


@dataclass(frozen=True)
class ContentResult:
    KIND: ClassVar[str] = "content"
    content: str

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ContentResult:
        read = _Fields(data, "a content event", ("event", "id"))
        event = cls(read.text("content"))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "content": self.content}


@dataclass(frozen=True)
class HealthReport:
    KIND: ClassVar[str] = "health"
    active: int = 0
    waiting: int = 0
    rss_bytes: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> HealthReport:
        read = _Fields(data, "a health event", ("event", "id"))
        event = cls(read.integer("active", 0), read.integer("waiting", 0), read.integer("rss_bytes", 0))
        read.done()
        return event

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.KIND, "active": self.active, "waiting": self.waiting, "rss_bytes": self.rss_bytes}


Event = (
    Ready | LoadFailed | TokenEvent | DoneEvent | ErrorEvent | EmbedResult | TokensResult | CountResult
    | ContentResult | HealthReport
)  # fmt: skip
_EVENTS: dict[str, Any] = {
    kind.KIND: kind
    for kind in (
        Ready, LoadFailed, TokenEvent, DoneEvent, ErrorEvent, EmbedResult, TokensResult, CountResult,
        ContentResult, HealthReport,
    )
}  # fmt: skip


def decode_event(data: Mapping[str, Any]) -> tuple[str | None, Event]:
    """A wire object from the runner as ``(id, event)``, ``ready`` and ``load_error`` having no id.

    ValueError if it is none.
    """
    if not isinstance(data, Mapping):
        raise ValueError("an event must be an object")
    kind = _EVENTS.get(data.get("event"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown event {data.get('event')!r}")
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ValueError(f"an event's id must be a string, not {request_id!r:.80}")
    return request_id, kind.from_wire(data)


def with_id(request_id: str, message: Request | Event) -> dict[str, Any]:
    """The wire object of ``message`` for the request ``request_id``: its id first, as the runner has always sent it."""
    return {"id": request_id, **message.to_wire()}
