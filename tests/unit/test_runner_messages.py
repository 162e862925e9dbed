"""The typed messages between server and runner: round trips through the wire, and refusals of bad data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pollama.runner import protocol
from pollama.runner.messages import (
    CancelRequest,
    CompletionRequest,
    ContentResult,
    Control,
    CountRequest,
    CountResult,
    DetokenizeRequest,
    DoneEvent,
    EmbedRequest,
    EmbedResult,
    ErrorEvent,
    HealthReport,
    HealthRequest,
    LoadFailed,
    Ready,
    Sampling,
    ShutdownRequest,
    TokenEvent,
    TokenizeRequest,
    TokensResult,
    decode_event,
    decode_request,
    with_id,
)
from pollama.runtime.options import DEFAULT_OPTIONS

REQUESTS = [
    CompletionRequest("Why is the sky blue?"),
    CompletionRequest(
        "hi",
        Sampling(temperature=0.0, top_k=1, seed=42, stop=("\n", "User:"), num_predict=12, logit_bias={5: -100.0}),
        Control(grammar="start: /a+/", grammar_after="</think>", logprobs=True, top_logprobs=3, shift=False),
    ),
    EmbedRequest("a sentence", truncate=False),
    TokenizeRequest("text", add_special=True),
    CountRequest("text", 10),
    DetokenizeRequest((1, 2, 3)),
    CancelRequest(),
    HealthRequest(),
    ShutdownRequest(),
]

EVENTS = [
    Ready(n_ctx=4096, n_ctx_train=8192, num_parallel=2, weights_bytes=10, total_bytes=20, vram_bytes=5),
    LoadFailed("no such file"),
    LoadFailed("the adapter does not match the model", 400),
    TokenEvent("Hello"),
    TokenEvent("", [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}]),
    DoneEvent("!", "stop", 10, 4, 1000, 5, 2000),
    DoneEvent("", "length", 3, 0, 1, 2, 3, context=[1, 2, 3, 4, 5]),
    ErrorEvent("the prompt is empty", 400),
    ErrorEvent("llama runner process has terminated", 500, crash="signal: sigsegv", output="a | b"),
    EmbedResult([0.25, -1.0, 3.5], 7),
    TokensResult([1, 2]),
    CountResult(3),
    ContentResult("text"),
    HealthReport(1, 2, 3),
]


def through_the_wire(message: dict[str, Any]) -> dict[str, Any]:
    decoder = protocol.Decoder()
    decoded = [decoder.feed(line) for line in protocol.encode(message)]
    assert decoded[-1] is not None
    return decoded[-1]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip(request_: Any) -> None:
    wire = through_the_wire(with_id("7", request_))
    assert wire["op"] == request_.KIND and wire["id"] == "7"
    assert decode_request(wire) == ("7", request_)
    assert type(request_).from_wire(request_.to_wire()) == request_


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip(event: Any) -> None:
    wire = through_the_wire(with_id("9", event))
    assert wire["event"] == event.KIND
    assert decode_event(wire) == ("9", event)
    assert decode_event(event.to_wire()) == (None, event)


def test_events_keep_their_old_wire_shape() -> None:
    assert with_id("1", TokenEvent("a")) == {"id": "1", "event": "token", "text": "a"}
    assert with_id("1", ErrorEvent("bad", 400)) == {"id": "1", "event": "error", "status": 400, "error": "bad"}
    done = with_id("1", DoneEvent("", "stop", 1, 0, 2, 3, 4)).keys()
    assert list(done) == [
        "id", "event", "done_reason", "text", "prompt_eval_count", "prompt_cached_count",
        "prompt_eval_duration", "eval_count", "eval_duration",
    ]  # fmt: skip
    assert with_id("2", EmbedResult([1.0], 1)) == {
        "id": "2",
        "event": "embedding",
        "embedding": [1.0],
        "prompt_eval_count": 1,
    }


def test_defaults_are_ollamas() -> None:
    sampling = Sampling()
    for name, value in DEFAULT_OPTIONS.items():
        assert getattr(sampling, name) == value, name
    assert (sampling.mirostat, sampling.mirostat_tau, sampling.mirostat_eta) == (0, 5.0, 0.1)
    assert sampling.stop == () and sampling.logit_bias == {}
    assert Control() == Control(None, "", "", None, False, 0, True, False)


def test_from_options_picks_only_sampling_options() -> None:
    options = {
        **DEFAULT_OPTIONS,
        "num_ctx": 2048,
        "num_thread": 4,
        "temperature": 0,  # an integer where a number is expected
        "stop": ["</s>"],
        "seed": 3,
        "grammar": "start: /x/",
        "logprobs": True,
        "logit_bias": {"12": 2, 13: -1.5},
        "mirostat_tau": None,  # None: the default
        "think": True,
    }
    sampling = Sampling.from_options(options)
    assert sampling.temperature == 0.0 and isinstance(sampling.temperature, float)
    assert sampling.stop == ("</s>",) and sampling.seed == 3 and sampling.mirostat_tau == 5.0
    assert sampling.logit_bias == {12: 2.0, 13: -1.5}
    assert "num_ctx" not in sampling.to_wire() and "grammar" not in sampling.to_wire()
    control = Control.from_options(options)
    assert control == Control(grammar="start: /x/", logprobs=True)
    assert Sampling.from_options({"stop": "###"}).stop == ("###",)


def test_sampling_wire_carries_logit_bias_with_string_keys() -> None:
    wire = Sampling(logit_bias={7: 1.0}).to_wire()
    assert json.loads(json.dumps(wire))["logit_bias"] == {"7": 1.0}
    assert "logit_bias" not in Sampling().to_wire()


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"op": "dance", "id": "1"}, "unknown operation 'dance'"),
        ({"id": "1"}, "unknown operation None"),
        ({"op": "completion", "id": "1"}, "needs the field 'prompt'"),
        ({"op": "completion", "id": "1", "prompt": 5}, "'prompt' must be a string"),
        ({"op": "completion", "id": "1", "prompt": "p", "options": {}}, "unknown field"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": {"top_k": "many"}}, "'top_k' must be an integer"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": {"temperature": True}}, "must be a number"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": {"num_ctx": 5}}, "unknown field(s): 'num_ctx'"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": []}, "'sampling' must be an object"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": {"stop": [1]}}, "list of strings"),
        ({"op": "completion", "id": "1", "prompt": "p", "sampling": {"logit_bias": {"x": 1}}}, "token ids"),
        ({"op": "completion", "id": "1", "prompt": "p", "control": {"shift": "yes"}}, "'shift' must be a boolean"),
        ({"op": "count", "id": "1", "content": "c"}, "needs the field 'limit'"),
        ({"op": "detokenize", "id": "1", "tokens": ["a"]}, "list of integers"),
        ({"op": "detokenize", "id": "1", "tokens": 3}, "list of integers"),
        ({"op": "health", "id": 1}, "id must be a string"),
        ({"op": "cancel", "id": "1", "why": "bored"}, "unknown field(s): 'why'"),
    ],
)
def test_bad_requests_are_value_errors(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode_request(wire)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"event": "sparkle"}, "unknown event 'sparkle'"),
        ({"id": "1", "event": "token", "text": 3}, "'text' must be a string"),
        ({"id": "1", "event": "token", "text": "", "logprobs": [1]}, "list of objects"),
        ({"id": "1", "event": "done", "done_reason": "stop"}, "needs the field 'prompt_eval_count'"),
        ({"id": "1", "event": "embedding", "embedding": ["x"], "prompt_eval_count": 1}, "list of numbers"),
        ({"id": "1", "event": "error"}, "needs the field 'error'"),
        ({"id": "1", "event": "health", "active": 1, "extra": 2}, "unknown field(s): 'extra'"),
        ({"event": "ready"}, "needs the field 'n_ctx'"),
        ({"id": 5, "event": "count", "count": 1}, "id must be a string"),
    ],
)
def test_bad_events_are_value_errors(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode_event(wire)
    assert message in str(caught.value)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_non_objects_are_value_errors(data: Any) -> None:
    with pytest.raises(ValueError):
        decode_request(data)
    with pytest.raises(ValueError):
        decode_event(data)
    with pytest.raises(ValueError):
        Sampling.from_wire(data)
    with pytest.raises(ValueError):
        Control.from_wire(data)


def test_from_options_with_a_wrong_type_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'seed' must be an integer"):
        Sampling.from_options({"seed": "abc"})


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Sampling().temperature = 1.0  # type: ignore[misc]
