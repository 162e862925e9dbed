"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis), against a real server with SmolLM2.

Every operation in ``/openapi.json`` gets a fixed number of generated requests, some that fit its
schema and some that break it, from a fixed seed, so a run is the same every time; then every operation
that reads JSON gets the hostile bodies a schema never produces (``HOSTILE_JSON``). What must hold is
what every client relies on: no 5xx, except the deliberate ones the document names for that operation
and whose error is one of ``DELIBERATE`` below; and no unexpected exception in the server (a traceback
in its log), which a streamed answer would otherwise hide in a 200. The findings of a run are reported
together, each kind once, with its request cut down to what still causes it. The server must still be
up and answering at the end.

The default tests take under a minute on two cores; ``test_no_server_errors_at_length`` (slow) sends
five times as many requests and lets the load-time options vary. Kept bounded, and why:
- The test model is created with ``num_predict 8`` and ``num_ctx 1024``: a prompt that fills a larger
  context takes longer than ``REQUEST_TIMEOUT`` on one thread. Every generated token limit
  (``num_predict``, ``max_tokens``...) above 8 or negative is cut to 8: an unbounded answer could run to
  the context's end. A finding is cut down for two minutes at most: one whose request got no answer
  costs ``REQUEST_TIMEOUT`` a try.
- It runs on one thread: llama.cpp's threads wait for each other spinning, so two of them on a machine
  where another process holds a core make each answer take seconds instead of a tenth of one.
- Load-time options that cost memory or threads (``num_ctx``, ``num_batch``, ``num_thread``,
  ``num_parallel``) are capped: a 100 000-token context or 10 000 threads would test the machine, not
  the server. In the default run every well-typed load-time option is dropped, since each new value
  reloads the model; wrongly typed ones still go through, to the server's type checks.
- ``/api/pull`` and ``/api/push`` would talk to registry.ollama.ai: the server's HTTP(S) proxy is a
  closed local port, so every transfer fails at once, offline, with the registry error the document
  names (its 500).
- ``/api/delete``, ``/api/copy``, ``/api/create``, ``/api/pull`` and ``/api/push`` only ever get names
  the generator made up: the test model is used as a source (``from``, ``source``), never as a target,
  so it survives the run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode

from pollama.model.options import OPTIONS
from tests.integration.conftest import upload
from tests.servers import ServerProcess, free_port
from tests.shrink import Shrinker

MODEL = "smol"
SEED = 11434
REQUEST_TIMEOUT = 30
MOST_TOKENS = 8
TOKEN_LIMITS = ("num_predict", "max_tokens", "max_completion_tokens", "max_output_tokens")
# A context of 1024 tokens: a prompt filling it takes seconds on one thread, where 4096 took over the
# 30-second REQUEST_TIMEOUT (a generated body of nested content parts renders to thousands of tokens).
CONTEXT = 1024
LOAD_CAPS = {"num_ctx": CONTEXT, "num_batch": 512, "num_thread": 1, "num_parallel": 2}
LOAD_TIME_OPTIONS = frozenset(name for name, spec in OPTIONS.items() if spec.load_time)
# Cutting a finding's request down costs requests; bounded, so that a run with many findings still ends in time.
SHRINK_REQUESTS_PER_FINDING = 60
# ... and time: a finding of a request that got no answer in REQUEST_TIMEOUT costs that long a try.
SHRINK_SECONDS_PER_FINDING = 120
SHRINK_REQUESTS_PER_RUN = 400

# The field that names the model a request works on; in half the cases it names the test model, so
# that they get past "model not found" into the handler's real work.
MODEL_FIELDS = {
    "POST /api/generate": "model",
    "POST /api/chat": "model",
    "POST /api/embed": "model",
    "POST /api/embeddings": "model",
    "POST /api/tokenize": "model",
    "POST /api/detokenize": "model",
    "POST /api/show": "model",
    "POST /api/create": "from",
    "POST /api/copy": "source",
    "POST /v1/chat/completions": "model",
    "POST /v1/completions": "model",
    "POST /v1/embeddings": "model",
    "POST /v1/responses": "model",
    "POST /v1/messages": "model",
}

# The deliberate server errors, as the README and the document describe them; any other is a finding.
DELIBERATE = {
    503: [re.compile(r"server busy, please try again")],
    500: [
        re.compile(r"^model requires more system memory"),
        re.compile(r"^llama runner process has terminated"),
        re.compile(r"^embedding contains NaN or Inf values$"),
        # The registry is out of reach (the proxy is a closed port), or the model to push is not stored.
        re.compile(r'^(Get|Head|Post|Put|Patch) "https?://'),
        re.compile(r"^open \S+: no such file or directory$"),
    ],
}


@dataclass(frozen=True)
class Bounds:
    examples: dict[GenerationMode, int]  # per operation
    vary_load_options: bool


QUICK = Bounds({GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 40}, vary_load_options=False)
AT_LENGTH = Bounds({GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 200}, vary_load_options=True)

# Bodies a schema-driven generator never writes (it writes valid JSON of reasonable depth and small
# templates): Python's json module reads NaN, Infinity and 1e400 (as inf), recurses on nesting and keeps
# lone surrogates, a body need not be UTF-8, and a template can nest, loop or print without end. "@model"
# is the test model where the operation only reads it, a scratch name where it would write it.
_NESTED_TEMPLATE = b"{{if 1}}" * 20_000 + b"{{end}}" * 20_000
HOSTILE_JSON = {
    "deep nesting": b'{"model": "@model", "options": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "NaN": b'{"model": "@model", "keep_alive": NaN, "options": {"temperature": NaN, "num_ctx": NaN}}',
    "Infinity": b'{"model": "@model", "keep_alive": -Infinity, "options": {"top_p": Infinity, "seed": -Infinity}}',
    "1e400": b'{"model": "@model", "keep_alive": 1e400, "max_tokens": 1e400, "options": {"num_keep": 1e400}}',
    "huge numbers": b'{"model": "@model", "keep_alive": 1e300, "top_logprobs": 100000000000000000000000,'
    b' "options": {"seed": 100000000000000000000000, "temperature": 1e300}}',
    "lone surrogate in the name": b'{"model": "@model\\ud800", "name": "\\udfff"}',
    "lone surrogates in text": b'{"model": "@model", "prompt": "\\ud800", "input": "\\udfff", "content": "\\ud800",'
    b' "messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 4}',
    "not UTF-8": b'{"model": "@mo\xffdel", "prompt": "\xfe"}',
    "negative token ids": b'{"model": "@model", "prompt": "Hi", "context": [-1], "tokens": [-1]}',
    "deeply nested template": b'{"model": "@model", "from": "smol", "prompt": "Hi", "template": "'
    + _NESTED_TEMPLATE
    + b'"}',
    "endless template": b'{"model": "@model", "from": "smol", "prompt": "Hi",'
    b' "template": "{{range 100000000}}x{{end}}"}',
    "template of huge output": b'{"model": "@model", "from": "smol", "prompt": "Hi",'
    b' "template": "{{printf \\"%999999999d\\" 1}}"}',
}

Kind = tuple[str, str, str]  # operation, status, error with its particulars blanked

EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: |$)")


@dataclass(frozen=True)
class Finding:
    operation: str
    status: str
    error: str
    body: Any

    def report(self) -> str:
        return f"{self.operation} -> {self.status}: {self.error}\n    {json.dumps(self.body, default=repr)[:1000]}"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    closed_port = f"http://127.0.0.1:{free_port()}"
    offline = {"HTTP_PROXY": closed_port, "HTTPS_PROXY": closed_port, "NO_PROXY": "", "no_proxy": ""}
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), extra_env=offline).start()
    try:
        client = ollama.Client(host=server.url)
        digest = upload(client, smollm2_path)
        client.create(
            MODEL,
            files={"smol.gguf": digest},
            parameters={"num_predict": MOST_TOKENS, "num_thread": 1, "num_ctx": CONTEXT},
        )
        yield server
    finally:
        server.stop()


def _bounded(body: dict[str, Any], vary_load_options: bool) -> None:
    """Cut the generated token limits and the costliest load-time options (see the module docstring)."""
    options = body.get("options")
    for fields in (body, options if isinstance(options, dict) else {}):
        for name in TOKEN_LIMITS:
            if _number(fields.get(name)) and not 0 <= fields[name] <= MOST_TOKENS:
                fields[name] = MOST_TOKENS
        for name, cap in LOAD_CAPS.items():
            if _number(fields.get(name)) and fields[name] > cap:
                fields[name] = cap
    if isinstance(options, dict) and not vary_load_options:
        for name in LOAD_TIME_OPTIONS & options.keys():
            if _number(options[name]) or isinstance(options[name], bool):
                del options[name]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _error_of(response: schemathesis.Response | httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # the OpenAI and Anthropic shapes
        error = error.get("message")
    return str(error if error is not None else data)[:300]


def _documented(operation: APIOperation, status: int, error: str) -> bool:
    if str(status) not in operation.definition.raw["responses"]:
        return False
    return any(pattern.search(error) for pattern in DELIBERATE.get(status, ()))


class Fuzzer:
    """Sends the generated cases to the server and keeps each kind of finding once."""

    def __init__(self, server: ServerProcess, bounds: Bounds = QUICK) -> None:
        self.server = server
        self.bounds = bounds
        self.log_offset = server.log_path.stat().st_size
        self.findings: dict[Kind, Finding] = {}
        self.shrink_requests_left = SHRINK_REQUESTS_PER_RUN
        self.cases = 0

    def run(self, operation: APIOperation, mode: GenerationMode) -> None:
        @seed(SEED)
        @settings(
            max_examples=self.bounds.examples[mode],
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), use_test_model=st.booleans())
        def fuzz(case: Case, use_test_model: bool) -> None:
            self.send(case, use_test_model)

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing in the request can be wrong: no body, and path parameters that take any string.
            assert mode is GenerationMode.NEGATIVE, operation.label

    def send(self, case: Case, use_test_model: bool) -> None:
        label = case.operation.label
        if isinstance(case.body, dict):
            if use_test_model and label in MODEL_FIELDS:
                case.body[MODEL_FIELDS[label]] = MODEL
            _bounded(case.body, self.bounds.vary_load_options)
        if use_test_model and "model" in (case.path_parameters or {}):
            case.path_parameters["model"] = MODEL
        self.cases += 1
        outcome = self._outcome(case.operation, lambda: case.call(base_url=self.server.url, timeout=REQUEST_TIMEOUT))
        if outcome is None or outcome[0] in self.findings:
            return
        kind, error = outcome
        body = case.body
        if isinstance(body, dict | list):
            deadline = time.monotonic() + SHRINK_SECONDS_PER_FINDING

            def reproduces(candidate: Any) -> bool:
                nonlocal error
                if time.monotonic() > deadline:
                    return False  # keep the body cut down so far
                again = self._resend(case, candidate)
                if again is None or again[0] != kind:
                    return False
                error = again[1]
                return True

            budget = min(SHRINK_REQUESTS_PER_FINDING, self.shrink_requests_left)
            shrinker = Shrinker(reproduces, budget)
            body = shrinker.shrink(body)
            self.shrink_requests_left -= budget - shrinker.budget
        self.findings[kind] = Finding(label, kind[1], error, body)

    def send_raw(self, operation: APIOperation, name: str, content: bytes) -> None:
        """Send ``content`` as the JSON body of ``operation``; a finding is reported under ``name``."""
        url = self.server.url + operation.path
        headers = {"Content-Type": "application/json"}
        self.cases += 1
        outcome = self._outcome(
            operation,
            lambda: httpx.request(operation.method, url, content=content, headers=headers, timeout=REQUEST_TIMEOUT),
        )
        if outcome is not None and outcome[0] not in self.findings:
            kind, error = outcome
            self.findings[kind] = Finding(operation.label, kind[1], error, f"<{name}>")

    def _resend(self, case: Case, body: Any) -> tuple[Kind, str] | None:
        def post() -> httpx.Response:
            # json.dumps escapes lone surrogates, as the generated request did.
            content = json.dumps(body)
            url = self.server.url + case.formatted_path
            headers = {"Content-Type": "application/json"}
            return httpx.request(case.method, url, content=content, headers=headers, timeout=REQUEST_TIMEOUT)

        return self._outcome(case.operation, post)

    def _outcome(
        self, operation: APIOperation, send: Callable[[], schemathesis.Response | httpx.Response]
    ) -> tuple[Kind, str] | None:
        """The kind of finding one request makes, and its error, if it makes one."""
        try:
            response = send()
        except (requests.RequestException, httpx.HTTPError, TimeoutError) as err:
            status, error, failed = "no answer", str(err) or err.__class__.__name__, True
        else:
            status, error = str(response.status_code), _error_of(response)
            failed = response.status_code >= 500 and not _documented(operation, response.status_code, error)
        if failed:
            # Starlette logs an unhandled exception again after its 500 has gone out: wait for that, so
            # that it is not taken for the next request's.
            self._wait_for_quiet_log()
        if crash := self._new_exception():
            status, error, failed = f"{status} after an exception in the server", crash, True
        if not failed:
            return None
        return (operation.label, status, re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", error)[:100]), error

    def _wait_for_quiet_log(self) -> None:
        size, deadline = -1, time.monotonic() + 2
        while time.monotonic() < deadline and size != (size := self.server.log_path.stat().st_size):
            time.sleep(0.05)

    def _new_exception(self) -> str | None:
        """The exception of the first traceback the server logged since the last look, if any."""
        with self.server.log_path.open("rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode(errors="replace")
            self.log_offset = log.tell()
        start = text.find("Traceback (most recent call last)")
        if start < 0:
            return None
        # The exception is the first line after the frames that names one: "module.Name: message". The log
        # may write a record on one line, its newlines escaped.
        lines = text[start:].replace("\\n", "\n").splitlines()[1:]
        return next((line for line in lines if EXCEPTION_LINE.match(line)), lines[-1] if lines else text)[:300]


def operations(server: ServerProcess) -> Iterator[APIOperation]:
    schema = schemathesis.openapi.from_dict(httpx.get(server.url + "/openapi.json").json())
    for result in schema.get_all_operations():
        yield result.ok()


def assert_no_findings(server: ServerProcess, fuzzer: Fuzzer) -> None:
    report = f"{len(fuzzer.findings)} kinds of server error in {fuzzer.cases} requests:\n" + "\n".join(
        finding.report() for finding in fuzzer.findings.values()
    )
    assert server.process is not None and server.process.poll() is None, f"the server died; {report}"
    greeting = {"model": MODEL, "prompt": "Hi", "stream": False}
    answer = httpx.post(server.url + "/api/generate", json=greeting, timeout=60)
    assert answer.status_code == 200, f"the server no longer answers: {answer.text}; {report}"
    assert not fuzzer.findings, report


def fuzz_all(server: ServerProcess, bounds: Bounds) -> None:
    fuzzer = Fuzzer(server, bounds)
    for operation in operations(server):
        for mode in bounds.examples:
            fuzzer.run(operation, mode)
    assert_no_findings(server, fuzzer)


def test_no_server_errors(fuzzed: ServerProcess) -> None:
    fuzz_all(fuzzed, QUICK)


def test_no_server_errors_from_hostile_json(fuzzed: ServerProcess) -> None:
    """What a schema-driven generator never writes, sent to every operation that reads a JSON body."""
    fuzzer = Fuzzer(fuzzed)
    for operation in operations(fuzzed):
        if any(body.media_type == "application/json" for body in operation.body):
            name = MODEL if MODEL_FIELDS.get(operation.label) == "model" else "scratch"
            for hostile, content in HOSTILE_JSON.items():
                fuzzer.send_raw(operation, hostile, content.replace(b"@model", name.encode()))
    assert_no_findings(fuzzed, fuzzer)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_no_server_errors_at_length(fuzzed: ServerProcess) -> None:
    fuzz_all(fuzzed, AT_LENGTH)
