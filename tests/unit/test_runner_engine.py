"""The batching engine, in process, with the real SmolLM2 GGUF.

Each test gets a fresh Engine over a module-scoped model (the KV cache is shared, but a fresh engine's
slots are empty, so every job starts by clearing its sequence). The model is loaded with a 512-token
context per sequence and a 64-token batch, so long prompts take several steps; context-limit tests use
a second model with the smallest context llama.cpp allows (256), so that filling it is quick.

One thread: with two, llama.cpp's threads spin-wait on each other, and on a two-core machine shared with
another busy process a 20-token answer was seen to take 50 s instead of 0.2 s.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
from llguidance import LLMatcher

from pollama.runner.draft_budget import DraftBudget
from pollama.runner.draft_model import DraftModel
from pollama.runner.engine import SHARED_PREFIX_MIN, Engine, Job
from pollama.runner.messages import Control, Event, Sampling, with_id
from pollama.runner.model import LoadedModel, LoadOptions, load
from pollama.runner.slots import common_prefix_length, truncate_prompt
from tools.test_models import ensure_model

# Spec G.7, verbatim.
PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten the prompt, "
    "adjust the context length in settings, or use a model with a longer context length"
)

STORY = "Once upon a time, in a small village by the sea, there lived an old fisherman named Tom. "
FRANCE = "The capital of France is"
NUMBERS = "1, 2, 3, 4, 5, 6,"


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[LoadedModel]:
    loaded = load(LoadOptions(path=smollm2_path, num_ctx=512, num_parallel=2, num_batch=64, num_thread=1, num_gpu=0))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def small_model(smollm2_path: Path) -> Iterator[LoadedModel]:
    loaded = load(LoadOptions(path=smollm2_path, num_ctx=256, num_parallel=1, num_batch=64, num_thread=1, num_gpu=0))
    assert loaded.n_ctx_seq == 256
    yield loaded
    loaded.close()


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, request_id: str, event: Event) -> None:
        self.events.append(with_id(request_id, event))

    def of(self, job_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["id"] == job_id]

    def done(self, job_id: str) -> dict[str, Any]:
        (event,) = [event for event in self.of(job_id) if event["event"] in ("done", "error", "embedding")]
        return event

    def text(self, job_id: str) -> str:
        return "".join(event.get("text", "") for event in self.of(job_id) if event["event"] in ("token", "done"))

    def index(self, job_id: str, kind: str) -> list[int]:
        return [i for i, event in enumerate(self.events) if event["id"] == job_id and event["event"] == kind]


class Harness:
    def __init__(
        self, model: LoadedModel, slots: int, draft_tokens: int = 0, draft_model: DraftModel | None = None
    ) -> None:
        self.model = model
        self.recorder = Recorder()
        self.engine = Engine(model, slots, self.recorder, draft_tokens=draft_tokens, draft_model=draft_model)
        if draft_tokens:  # drafts whatever they cost: what these tests check is that they change no answer
            self.engine.draft_budget = DraftBudget(draft_tokens, measured=False)
        self.steps = 0

    def submit(self, job_id: str, prompt: str | list[int], **options: Any) -> Job:
        tokens = self.model.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        assert not (unknown := set(options) - Sampling.names() - Control.names()), unknown
        job = Job(job_id, tokens, sampling=Sampling.from_options(options), control=Control.from_options(options))
        self.engine.submit(job)
        return job

    def step(self) -> None:
        self.engine.step()
        self.steps += 1

    def drain(self, limit: int = 5000) -> None:
        while self.engine.busy:
            assert self.steps < limit, "the engine did not finish"
            self.step()

    def run(self, job_id: str, prompt: str | list[int], **options: Any) -> dict[str, Any]:
        self.submit(job_id, prompt, **options)
        self.drain()
        return self.recorder.done(job_id)

    def batch_sequences(self) -> list[int]:
        """The sequence id of every token in the last decoded batch."""
        batch = self.engine._batch
        return [batch.seq_id[i][0] for i in range(batch.n_tokens)]


@pytest.fixture
def make(model: LoadedModel) -> Iterator[Any]:
    harnesses: list[Harness] = []

    def create(slots: int = 2, on: LoadedModel | None = None, draft_tokens: int = 0) -> Harness:
        harness = Harness(on or model, slots, draft_tokens)
        harnesses.append(harness)
        return harness

    yield create
    for harness in harnesses:
        harness.engine.close()


def greedy(num_predict: int, **more: Any) -> dict[str, Any]:
    return {"temperature": 0, "num_predict": num_predict, **more}


def no_eog(model: LoadedModel) -> dict[int, float]:
    """A logit bias that keeps the model from ending its answer."""
    return {token: -1000.0 for token in range(min(model.n_vocab, 64)) if model.is_end_of_generation(token)}


def long_tokens(model: LoadedModel, count: int) -> list[int]:
    tokens = model.tokenize(STORY * 60)
    assert len(tokens) >= count
    return tokens[:count]


# --- concurrency ----------------------------------------------------------------------------------


def test_two_jobs_run_concurrently(make: Any) -> None:
    h = make(slots=2)
    a = h.submit("a", FRANCE, **greedy(6))
    b = h.submit("b", NUMBERS, **greedy(6))
    h.step()
    assert h.engine.active == [a, b]
    assert a.slot is not b.slot and a.slot.busy and b.slot.busy
    assert not h.engine.waiting
    # Both prompts fit one batch: both were decoded in the first step and both sampled.
    assert sorted(set(h.batch_sequences())) == sorted([a.slot.seq_id, b.slot.seq_id])
    assert a.batch_index >= 0 and b.batch_index >= 0
    h.step()
    # The next decode holds exactly one new token of each sequence.
    assert sorted(h.batch_sequences()) == sorted([a.slot.seq_id, b.slot.seq_id])
    h.drain()
    for job_id in "ab":
        done = h.recorder.done(job_id)
        assert (done["event"], done["done_reason"], done["eval_count"]) == ("done", "length", 6)
    assert h.steps == 6
    # The token events interleave: each job's tokens come out in every step.
    a_tokens, b_tokens = h.recorder.index("a", "token"), h.recorder.index("b", "token")
    assert a_tokens[0] < b_tokens[0] < a_tokens[-1]
    assert b_tokens[0] < a_tokens[1]
    assert not h.engine.busy
    assert not any(slot.busy for slot in h.engine.slots)


def test_third_job_waits_for_a_free_slot(make: Any) -> None:
    h = make(slots=2)
    h.submit("a", FRANCE, **greedy(2))
    h.submit("b", NUMBERS, **greedy(10))
    c = h.submit("c", STORY, **greedy(3))
    h.step()
    assert [job.id for job in h.engine.active] == ["a", "b"]
    assert list(h.engine.waiting) == [c]
    assert c.slot is None
    h.step()  # a generates its second token and finishes
    assert h.recorder.done("a")["done_reason"] == "length"
    assert list(h.engine.waiting) == [c]  # admitted at the start of the next step
    h.step()
    assert [job.id for job in h.engine.active] == ["b", "c"]
    assert not h.engine.waiting
    h.drain()
    c_done = h.recorder.done("c")
    assert (c_done["done_reason"], c_done["eval_count"]) == ("length", 3)
    events = h.recorder.events
    assert events.index(h.recorder.done("a")) < h.recorder.index("c", "token")[0]
    assert events.index(c_done) < events.index(h.recorder.done("b"))  # c ran while b was still going


def test_cancel_frees_the_slot_at_once(make: Any) -> None:
    h = make(slots=2)
    a = h.submit("a", FRANCE, **greedy(50))
    h.submit("b", NUMBERS, **greedy(8))
    h.step()
    h.step()
    slot = a.slot
    count = len(h.recorder.of("a"))
    h.engine.cancel("a")
    assert not slot.busy
    assert a not in h.engine.active
    h.drain()
    assert len(h.recorder.of("a")) == count  # nothing more for a: no tokens, no done
    assert h.recorder.done("b")["eval_count"] == 8


def test_cancel_mid_prompt_keeps_the_evaluated_part_cached(make: Any, model: LoadedModel) -> None:
    h = make(slots=1)
    prompt = long_tokens(model, 100)
    h.submit("a", prompt, **greedy(3))
    h.step()  # one 64-token chunk of the prompt
    h.engine.cancel("a")
    assert not h.engine.busy
    assert h.engine.slots[0].cached == prompt[:64]
    done = h.run("b", prompt, **greedy(3))
    assert done["prompt_eval_count"] == 100  # the whole prompt, as Ollama counts it
    assert evaluated(done) == 100 - 64
    assert h.recorder.of("a") == []


def test_cancel_a_waiting_job(make: Any) -> None:
    h = make(slots=1)
    h.submit("a", FRANCE, **greedy(3))
    h.submit("b", NUMBERS, **greedy(3))
    h.step()
    h.engine.cancel("b")
    assert not h.engine.waiting
    h.drain()
    assert h.recorder.of("b") == []


def test_cancelled_slot_is_reused_by_a_waiting_job(make: Any) -> None:
    h = make(slots=1)
    h.submit("a", FRANCE, **greedy(50))
    b = h.submit("b", NUMBERS, **greedy(2))
    h.step()
    h.engine.cancel("a")
    h.step()
    assert h.engine.active == [b]
    h.drain()
    assert h.recorder.done("b")["eval_count"] == 2


# --- prompt cache ---------------------------------------------------------------------------------


def evaluated(done: dict[str, Any]) -> int:
    """How much of the prompt was decoded: the prompt less what the cache held."""
    return done["prompt_eval_count"] - done["prompt_cached_count"]


def test_prompt_cache_evaluates_only_new_tokens(make: Any, model: LoadedModel) -> None:
    h = make(slots=2)
    first = h.run("1", STORY, **greedy(8, return_context=True))
    context = first["context"]
    assert context[: len(model.tokenize(STORY))] == model.tokenize(STORY)
    assert len(context) == first["prompt_eval_count"] + 8
    extra = model.tokenize(" The end. Then", add_special=False)
    second = h.run("2", context + extra, **greedy(4, return_context=True))
    # The answer's last token was sampled but never decoded: it is evaluated with the new ones.
    assert len(extra) <= evaluated(second) <= len(extra) + 1
    assert second["prompt_eval_count"] == len(context + extra)
    # The cached run answers as a run from scratch would.
    fresh = make(slots=1)
    assert fresh.run("3", context + extra, **greedy(4))["prompt_eval_count"] == len(context + extra)
    assert h.recorder.text("2") == fresh.recorder.text("3")


def test_identical_prompt_reevaluates_only_the_last_token(make: Any) -> None:
    h = make(slots=1)
    assert h.run("1", STORY, **greedy(2))["prompt_eval_count"] == len(h.model.tokenize(STORY))
    again = h.run("2", STORY, **greedy(2))
    assert (again["prompt_eval_count"], evaluated(again)) == (len(h.model.tokenize(STORY)), 1)
    assert h.recorder.text("1") == h.recorder.text("2")


def test_job_goes_to_the_slot_holding_its_prefix(make: Any) -> None:
    h = make(slots=2)
    story = h.submit("1", STORY, **greedy(1))
    h.drain()
    france = h.submit("2", FRANCE, **greedy(1))
    h.drain()
    assert story.slot is not france.slot  # the second job took the unused slot, not the cached one
    # The story's slot was used less recently, but it holds the prefix.
    job = h.submit("3", STORY + " He", **greedy(1))
    h.drain()
    assert job.slot is story.slot
    assert evaluated(h.recorder.done("3")) < 5
    # With no prefix anywhere, the least recently used slot is taken.
    other = h.submit("4", NUMBERS, **greedy(1))
    h.drain()
    assert other.slot is france.slot


# --- a prefix shared across slots -----------------------------------------------------------------


def two_questions(model: LoadedModel, system_tokens: int) -> tuple[list[int], list[int], int]:
    """Two prompts that share a system prompt of ``system_tokens`` tokens, and how long their common prefix is."""
    system = long_tokens(model, system_tokens)
    first = system + model.tokenize(" Question: what did Tom catch?", add_special=False)
    second = system + model.tokenize(" Question: where did Tom live?", add_special=False)
    return first, second, common_prefix_length(first, second)


def answers_alone(make: Any, *prompts: list[int]) -> list[str]:
    alone = make(slots=1)
    for index, prompt in enumerate(prompts):
        alone.engine.slots[0].cached = []  # no cache from the previous prompt: each answer from scratch
        alone.run(str(index), prompt, **greedy(8))
    return [alone.recorder.text(str(index)) for index in range(len(prompts))]


def test_a_prefix_held_by_a_busy_slot_is_copied_not_evaluated(make: Any, model: LoadedModel) -> None:
    first, second, shared = two_questions(model, 150)
    expected = answers_alone(make, first, second)
    h = make(slots=2)
    a = h.submit("a", first, **greedy(8))
    while a.pending or a.slot is None:
        h.step()  # the first job's prompt is in its cache, and it is generating
    b = h.submit("b", second, **greedy(8))
    h.drain()
    assert a.slot is not b.slot
    assert h.recorder.done("b")["prompt_cached_count"] == shared
    assert [h.recorder.text("a"), h.recorder.text("b")] == expected


def test_requests_arriving_together_evaluate_their_shared_prefix_once(make: Any, model: LoadedModel) -> None:
    first, second, shared = two_questions(model, 150)
    expected = answers_alone(make, first, second)
    h = make(slots=2)
    h.submit("a", first, **greedy(8))
    h.submit("b", second, **greedy(8))
    h.step()
    assert len(h.engine.active) == 1  # the second waits while the first evaluates what they share
    h.drain()
    assert h.recorder.done("a")["prompt_cached_count"] == 0
    assert h.recorder.done("b")["prompt_cached_count"] == shared
    assert [h.recorder.text("a"), h.recorder.text("b")] == expected


def test_a_slot_cache_taken_by_another_prompt_is_saved_and_restored(make: Any, model: LoadedModel) -> None:
    first, second, shared = two_questions(model, 150)
    other = long_tokens(model, 400)[200:]  # nothing in common with the two questions
    expected = answers_alone(make, second)
    h = make(slots=1)
    h.run("first", first, **greedy(4))
    h.run("other", other, **greedy(4))  # takes the only slot: the first conversation's cache is saved
    assert len(h.engine.saved) == 1
    assert h.run("second", second, **greedy(8))["prompt_cached_count"] == shared
    assert [h.recorder.text("second")] == expected


def test_a_short_shared_prefix_is_not_worth_a_copy(make: Any, model: LoadedModel) -> None:
    first, second, shared = two_questions(model, 20)
    assert shared < SHARED_PREFIX_MIN
    h = make(slots=2)
    h.submit("a", first, **greedy(4))
    h.submit("b", second, **greedy(4))
    h.step()
    assert len(h.engine.active) == 2  # no waiting
    h.drain()
    assert h.recorder.done("b")["prompt_cached_count"] == 0


# --- speculative decoding ------------------------------------------------------------------------

FRUITS = "Copy this list exactly: apple, banana, cherry, date, elderberry, fig, grape, kiwi, lemon, mango. " * 3


def test_drafts_change_nothing_but_the_number_of_steps(make: Any, model: LoadedModel) -> None:
    options = greedy(48, logit_bias=no_eog(model))
    plain = make(slots=1)
    plain.run("plain", FRUITS, **options)
    drafted = make(slots=1, draft_tokens=8)
    drafted.engine.slots[0].cached = []  # no cache from the plain run: the same prompt work on both sides
    drafted.run("drafted", FRUITS, **options)
    assert drafted.recorder.text("drafted") == plain.recorder.text("plain")
    assert drafted.recorder.done("drafted")["eval_count"] == 48
    assert drafted.steps < plain.steps * 0.75  # drafts were accepted: several tokens a step
    slot = drafted.engine.slots[0]
    assert llama_cpp.llama_memory_seq_pos_max(model.memory, slot.seq_id) == len(slot.cached) - 1


def test_drafts_alongside_other_sequences_and_sampling(make: Any, model: LoadedModel) -> None:
    sampled = {"temperature": 0.8, "seed": 7, "num_predict": 32}
    plain = make(slots=2)
    plain.submit("a", FRUITS, **greedy(24))
    plain.submit("b", STORY, **sampled)
    plain.drain()
    drafted = make(slots=2, draft_tokens=4)
    for slot in drafted.engine.slots:
        slot.cached = []
    drafted.submit("a", FRUITS, **greedy(24))
    drafted.submit("b", STORY, **sampled)
    drafted.drain()
    assert [drafted.recorder.text(job) for job in "ab"] == [plain.recorder.text(job) for job in "ab"]


def test_a_cache_left_by_drafts_answers_the_next_turn_as_a_fresh_one(make: Any, model: LoadedModel) -> None:
    drafted = make(slots=1, draft_tokens=8)
    first = drafted.run("1", FRUITS, **greedy(20, return_context=True))
    follow_up = first["context"] + model.tokenize(" Now count them.", add_special=False)
    drafted.run("2", follow_up, **greedy(12))
    assert evaluated(drafted.recorder.done("2")) < 12  # the cache was reused
    fresh = make(slots=1)
    fresh.engine.slots[0].cached = []
    fresh.run("3", follow_up, **greedy(12))
    assert drafted.recorder.text("2") == fresh.recorder.text("3")


# --- sampling and limits --------------------------------------------------------------------------


def test_greedy_output_does_not_depend_on_batching(make: Any) -> None:
    alone = make(slots=1)
    alone.run("a", STORY, **greedy(12))
    batched = make(slots=2)
    batched.submit("a", STORY, **greedy(12))
    batched.submit("b", NUMBERS, **greedy(14))
    batched.drain()
    assert batched.recorder.text("a") == alone.recorder.text("a")


def test_num_predict_limits_the_answer(make: Any, model: LoadedModel) -> None:
    h = make()
    done = h.run("a", FRANCE, **greedy(5, logit_bias=no_eog(model)))
    assert (done["done_reason"], done["eval_count"]) == ("length", 5)
    assert done["prompt_eval_count"] == len(model.tokenize(FRANCE))
    assert h.recorder.text("a")


def test_num_predict_zero_generates_nothing(make: Any, model: LoadedModel) -> None:
    h = make()
    done = h.run("a", FRANCE, num_predict=0)
    assert (done["done_reason"], done["eval_count"], h.recorder.text("a")) == ("length", 0, "")
    assert done["prompt_eval_count"] == len(model.tokenize(FRANCE))
    assert h.recorder.index("a", "token") == []


def test_end_of_generation_token_stops(make: Any, model: LoadedModel) -> None:
    h = make()
    prompt = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    done = h.run("a", prompt, **greedy(100, return_context=True))
    assert done["done_reason"] == "stop"
    assert done["eval_count"] < 100
    assert "<|im_end|>" not in h.recorder.text("a")
    answer = done["context"][len(model.tokenize(prompt)) :]
    assert len(answer) == done["eval_count"] - 1  # the end-of-generation token is not part of the context
    assert not any(model.is_end_of_generation(token) for token in answer)


def test_stop_sequences(make: Any) -> None:
    h = make(slots=1)
    h.run("free", NUMBERS, **greedy(20))
    text = h.recorder.text("free")
    assert len(text) > 12, text
    stop = text[6:9]
    cut = text.find(stop)
    done = h.run("stopped", NUMBERS, **greedy(20, stop=[stop]))
    assert done["done_reason"] == "stop"
    assert h.recorder.text("stopped") == text[:cut]
    assert done["eval_count"] < 20
    # The earliest of several stops wins, whatever their order.
    later = text[cut + 4 : cut + 6]
    h.run("two", NUMBERS, **greedy(20, stop=[later, stop]))
    assert h.recorder.text("two") == text[: min(cut, text.find(later))]


def test_logprobs(make: Any) -> None:
    h = make()
    done = h.run("a", FRANCE, **greedy(5, logprobs=True, top_logprobs=3))
    tokens = [event for event in h.recorder.of("a") if event["event"] == "token"]
    entries = [entry for event in tokens for entry in event["logprobs"]]
    assert len(entries) == done["eval_count"] == 5
    assert all(len(event["logprobs"]) == 1 for event in tokens)
    for entry in entries:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0
        assert entry["bytes"] == list(entry["token"].encode())
        top = entry["top_logprobs"]
        assert len(top) == 3
        assert [alt["logprob"] for alt in top] == sorted((alt["logprob"] for alt in top), reverse=True)
        assert sum(math.exp(alt["logprob"]) for alt in top) <= 1.0001
        # Greedy: the chosen token is the most likely one.
        assert (top[0]["token"], top[0]["logprob"]) == (entry["token"], entry["logprob"])
    assert "".join(entry["token"] for entry in entries) == h.recorder.text("a")


def test_logprobs_without_alternatives(make: Any) -> None:
    h = make()
    h.run("a", FRANCE, **greedy(3, logprobs=True))
    entries = [entry for event in h.recorder.of("a") if event["event"] == "token" for entry in event["logprobs"]]
    assert len(entries) == 3
    assert all("top_logprobs" not in entry for entry in entries)
    plain = make()
    plain.run("b", FRANCE, **greedy(3))
    assert all("logprobs" not in event for event in plain.recorder.of("b"))


def test_seed_reproduces_sampled_text(make: Any) -> None:
    options = {"temperature": 1.0, "top_k": 100, "top_p": 1.0, "num_predict": 10}
    texts = []
    for seed in (1234, 1234, 99):
        h = make(slots=1)
        h.run("a", STORY, seed=seed, **options)
        texts.append(h.recorder.text("a"))
    assert texts[0] == texts[1]
    assert texts[2] != texts[0]  # another seed, another text


def test_seed_reproduces_while_batched(make: Any) -> None:
    options = {"temperature": 1.0, "top_k": 100, "top_p": 1.0, "num_predict": 12, "seed": 5}
    alone = make(slots=1)
    alone.run("a", FRANCE, **options)
    batched = make(slots=2)
    batched.submit("b", NUMBERS, **greedy(12))
    batched.submit("a", FRANCE, **options)
    batched.drain()
    assert batched.recorder.text("a") == alone.recorder.text("a")


_MORE_SEQUENCES_THAN_BATCH = """
import json, sys
from pathlib import Path
from pollama.runner.draft_budget import DraftBudget
from pollama.runner.engine import SHARED_PREFIX_MIN, Engine, Job
from pollama.runner.messages import Sampling, with_id
from pollama.runner.model import LoadOptions, load

model = load(LoadOptions(path=Path(sys.argv[1]), num_ctx=256, num_parallel=3, num_batch=2, num_thread=1, num_gpu=0))
events = []
engine = Engine(model, 3, lambda request_id, event: events.append(with_id(request_id, event)))
for name in "abc":
    tokens = model.tokenize("The capital of France is")
    engine.submit(Job(name, tokens, sampling=Sampling(temperature=0, num_predict=5)))
for _ in range(200):
    if not engine.busy:
        break
    engine.step()
print(json.dumps([event for event in events if event["event"] != "token"]))
"""


def test_more_sequences_than_batch_size(smollm2_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MORE_SEQUENCES_THAN_BATCH, str(smollm2_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    finished = json.loads(result.stdout.splitlines()[-1])
    assert [(event["id"], event["event"], event["eval_count"]) for event in finished] == [
        (name, "done", 5) for name in "abc"
    ]


# --- prompts longer than the context --------------------------------------------------------------


def test_long_prompt_without_shift_is_an_error(make: Any, model: LoadedModel) -> None:
    h = make(slots=1)
    h.submit("a", long_tokens(model, 600), **greedy(4, shift=False))
    h.step()
    assert h.recorder.of("a") == [{"id": "a", "event": "error", "status": 400, "error": PROMPT_TOO_LONG}]
    assert not h.engine.busy
    assert not h.engine.slots[0].busy
    # The slot is still usable.
    assert h.run("b", FRANCE, **greedy(2))["eval_count"] == 2


def test_prompt_of_exactly_the_context_is_too_long(make: Any, small_model: LoadedModel) -> None:
    h = make(slots=1, on=small_model)
    h.submit("a", long_tokens(small_model, 256), **greedy(4, shift=False))
    h.drain()
    assert h.recorder.done("a")["error"] == PROMPT_TOO_LONG


def test_long_prompt_with_shift_is_truncated(make: Any, small_model: LoadedModel) -> None:
    h = make(slots=1, on=small_model)
    prompt = long_tokens(small_model, 260)
    done = h.run("a", prompt, **greedy(4, logit_bias=no_eog(small_model), return_context=True))
    assert (done["event"], done["done_reason"], done["eval_count"]) == ("done", "length", 4)
    kept = truncate_prompt(prompt, 256, 4, small_model.add_bos)
    assert done["prompt_eval_count"] == len(kept) < 256
    assert done["context"][: len(kept)] == kept
    assert kept[:4] == prompt[:4] and kept[-10:] == prompt[-10:]


def test_long_prompt_with_fill_context_is_an_error(make: Any, small_model: LoadedModel) -> None:
    h = make(slots=1, on=small_model)
    h.submit("a", long_tokens(small_model, 300), num_predict=-2)
    h.drain()
    assert h.recorder.done("a")["status"] == 400


def test_truncated_prompt_does_not_reuse_a_stale_prefix(make: Any, small_model: LoadedModel) -> None:
    h = make(slots=1, on=small_model)
    prompt = long_tokens(small_model, 300)
    h.run("warm", prompt[:100], **greedy(1))  # the slot now caches the long prompt's first 100 tokens
    done = h.run("long", prompt, **greedy(2))
    kept = truncate_prompt(prompt, 256, 4, small_model.add_bos)
    assert h.engine.slots[0].cached[: len(kept)] == kept
    assert done["prompt_eval_count"] >= len(kept) - 4


# --- filling and shifting the context -------------------------------------------------------------


NEAR_FULL = 240  # prompt tokens in the 256-token context


@pytest.fixture(scope="module")
def near_full(small_model: LoadedModel) -> Iterator[Harness]:
    """One engine for the tests below: they share a prompt, so after the first only its last token is evaluated."""
    harness = Harness(small_model, 1)
    yield harness
    harness.engine.close()


def test_fill_context_stops_at_the_context_limit(near_full: Harness, small_model: LoadedModel) -> None:
    prompt = long_tokens(small_model, NEAR_FULL)
    done = near_full.run("fill", prompt, num_predict=-2, temperature=0, logit_bias=no_eog(small_model))
    assert done["done_reason"] == "length"
    # Every generated token but the last was decoded into the context, which is now full.
    assert len(prompt) + done["eval_count"] - 1 == 256
    assert len(near_full.engine.slots[0].cached) == 256


def test_context_full_without_shift_ends_with_length(near_full: Harness, small_model: LoadedModel) -> None:
    prompt = long_tokens(small_model, NEAR_FULL)
    done = near_full.run("no-shift", prompt, **greedy(100, shift=False, logit_bias=no_eog(small_model)))
    assert done["done_reason"] == "length"
    assert len(prompt) + done["eval_count"] - 1 == 256


def test_context_shift_lets_generation_go_on(near_full: Harness, small_model: LoadedModel) -> None:
    prompt = long_tokens(small_model, NEAR_FULL)
    done = near_full.run("shift", prompt, **greedy(50, logit_bias=no_eog(small_model), return_context=True))
    assert (done["done_reason"], done["eval_count"]) == ("length", 50)
    assert len(prompt) + 50 > 256
    cached = near_full.engine.slots[0].cached
    assert len(cached) < 256
    assert cached[:4] == prompt[:4]  # num_keep tokens stay at the start
    assert cached[-20:] == done["context"][-21:-1]  # the newest tokens are all there
    # The cache matches what llama.cpp holds for the sequence.
    memory, seq = small_model.memory, near_full.engine.slots[0].seq_id
    assert llama_cpp.llama_memory_seq_pos_max(memory, seq) == len(cached) - 1
    assert llama_cpp.llama_memory_seq_pos_min(memory, seq) == 0


@pytest.mark.slow
def test_generation_goes_past_num_ctx_with_context_shift(make: Any, small_model: LoadedModel) -> None:
    h = make(slots=1, on=small_model)
    done = h.run("a", STORY, **greedy(300, logit_bias=no_eog(small_model)))
    assert (done["done_reason"], done["eval_count"]) == ("length", 300)
    assert done["eval_count"] > small_model.n_ctx_seq


@pytest.mark.slow
def test_fill_context_with_the_512_context(make: Any, model: LoadedModel) -> None:
    h = make(slots=2)
    done = h.run("a", STORY, num_predict=-2, temperature=0, logit_bias=no_eog(model))
    assert done["done_reason"] == "length"
    assert len(model.tokenize(STORY)) + done["eval_count"] - 1 == 512


@pytest.mark.slow
def test_num_predict_larger_than_num_ctx_shifts_past_512(make: Any, model: LoadedModel) -> None:
    h = make(slots=2)
    done = h.run("a", STORY, **greedy(600, logit_bias=no_eog(model)))
    assert (done["done_reason"], done["eval_count"]) == ("length", 600)
    assert done["eval_count"] > model.n_ctx_seq


# --- embeddings -----------------------------------------------------------------------------------


def test_embedding_job(make: Any, model: LoadedModel) -> None:
    h = make(slots=2)
    tokens = long_tokens(model, 70)  # two 64-token batches
    job = Job("e", tokens, embed=True)
    h.engine.submit(job)
    h.drain()
    (event,) = h.recorder.of("e")
    assert event["event"] == "embedding"
    vector = event["embedding"]
    assert len(vector) == model.n_embd
    assert all(isinstance(value, float) and math.isfinite(value) for value in vector)
    assert any(value != 0 for value in vector)
    assert event["prompt_eval_count"] == len(tokens)
    assert job.slot.cached == []
    assert not job.slot.busy
    assert llama_cpp.llama_memory_seq_pos_max(model.memory, job.slot.seq_id) == -1


def test_embedding_is_deterministic(make: Any, model: LoadedModel) -> None:
    h = make(slots=1)
    tokens = model.tokenize(STORY)
    h.engine.submit(Job("1", tokens, embed=True))
    h.drain()
    h.engine.submit(Job("2", tokens, embed=True))
    h.drain()
    one, two = h.recorder.done("1")["embedding"], h.recorder.done("2")["embedding"]
    assert len(one) == model.n_embd
    assert one == pytest.approx(two, abs=1e-5)


def test_embedding_alongside_generation(make: Any, model: LoadedModel) -> None:
    alone = make(slots=1)
    alone.run("a", FRANCE, **greedy(10))
    h = make(slots=2)
    h.submit("a", FRANCE, **greedy(10))
    h.step()
    h.step()
    h.engine.submit(Job("e", model.tokenize(STORY), embed=True))
    h.drain()
    assert h.recorder.done("e")["event"] == "embedding"
    assert h.recorder.text("a") == alone.recorder.text("a")


def test_embedding_longer_than_the_context_is_an_error(make: Any, model: LoadedModel) -> None:
    h = make(slots=1)
    h.engine.submit(Job("e", long_tokens(model, 600), embed=True))
    h.drain()
    assert h.recorder.done("e") == {
        "id": "e",
        "event": "error",
        "status": 400,
        "error": "the input length exceeds the context length",
    }
    assert not h.engine.slots[0].busy


# --- other requests -------------------------------------------------------------------------------


def test_grammar_constrains_the_answer(make: Any) -> None:
    h = make(slots=1)
    grammar = LLMatcher.grammar_from_lark('start: "yes" | "no"')
    done = h.run("a", FRANCE, grammar=grammar, temperature=0.8, seed=3, num_predict=10)
    assert h.recorder.text("a") in ("yes", "no")
    assert done["done_reason"] == "stop"


def test_invalid_grammar_is_an_error(make: Any) -> None:
    h = make(slots=1)
    h.submit("a", FRANCE, grammar=LLMatcher.grammar_from_lark("start: ("), num_predict=3)
    h.drain()
    done = h.recorder.done("a")
    assert (done["event"], done["status"]) == ("error", 400)
    assert not h.engine.slots[0].busy


def test_a_grammar_naming_a_missing_special_token_falls_back(make: Any) -> None:
    # A forced tool call names the model's tag as a special token; a model without one gets the text form.
    h = make(slots=1)
    special = LLMatcher.grammar_from_lark('start: <no_such_token> "yes"')
    fallback = LLMatcher.grammar_from_lark('start: "yes"')
    done = h.run("a", FRANCE, grammar=special, grammar_fallback=fallback, num_predict=10)
    assert (h.recorder.text("a"), done["done_reason"]) == ("yes", "stop")
    h.submit("b", FRANCE, grammar=special, num_predict=3)
    h.drain()
    failed = h.recorder.done("b")
    assert (failed["event"], failed["status"]) == ("error", 400)
    assert "no_such_token" in failed["error"]


def test_empty_prompt_is_an_error(make: Any) -> None:
    h = make(slots=1)
    h.engine.submit(Job("a", []))
    h.drain()
    assert h.recorder.done("a") == {"id": "a", "event": "error", "status": 400, "error": "the prompt is empty"}


# --- a format after thinking ------------------------------------------------------------------------

THINK_PROMPT = "<|im_start|>user\nGive me a JSON object describing a cat.<|im_end|>\n<|im_start|>assistant\n"


def test_format_waits_for_the_end_of_thinking(make: Any) -> None:
    # The thinking must close before the answer is held to the format; SmolLM2 never writes "</think>",
    # so everything it says is free text (which the server files as thinking, not as an answer).
    h = make(slots=1)
    grammar = LLMatcher.grammar_from_json_schema({"type": "object"})
    h.run("a", THINK_PROMPT, grammar=grammar, grammar_after="</think>", temperature=0, num_predict=12)
    text = h.recorder.text("a")
    assert text and not text.lstrip().startswith("{")


def test_format_starts_at_once_when_the_answer_does_not_open_thinking(make: Any) -> None:
    h = make(slots=1)
    grammar = LLMatcher.grammar_from_json_schema({"type": "object"})
    h.run("plain", THINK_PROMPT, grammar=grammar, temperature=0, num_predict=20)
    h.run(
        "thinking", THINK_PROMPT, grammar=grammar, grammar_after="</think>", grammar_opening="<think>",
        temperature=0, num_predict=20,
    )  # fmt: skip
    assert h.recorder.text("thinking").startswith("{")
    assert h.recorder.text("thinking") == h.recorder.text("plain")


# --- sliding-window models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma() -> Iterator[LoadedModel]:
    loaded = load(LoadOptions(path=ensure_model("gemma3"), num_ctx=2048, num_parallel=1, num_batch=512,
                              num_thread=1, num_gpu=0))  # fmt: skip
    yield loaded
    loaded.close()


def test_a_sliding_window_model_reuses_any_prefix(make: Any, gemma: LoadedModel) -> None:
    # Gemma 3's SWA layers see the last 512 positions. With a SWA cache of only that window (llama.cpp's
    # swa_full off) a long prompt would drop the start of the cache, and a prefix cut from it would lack
    # the positions its next token sees; the runner keeps llama.cpp's default, a full-size SWA cache.
    assert llama_cpp.llama_model_n_swa(gemma.model) == 512
    long = gemma.tokenize(STORY * 80)[:1500]
    end = gemma.tokenize(" The end.", add_special=False)
    h = make(slots=1, on=gemma)
    h.run("long", long, **greedy(2))
    assert llama_cpp.llama_memory_seq_pos_min(gemma.memory, 0) == 0
    assert h.run("again", long[:600] + end, **greedy(8))["prompt_cached_count"] == 600
    fresh = make(slots=1, on=gemma)
    fresh.run("fresh", long[:600] + end, **greedy(8))
    assert h.recorder.text("again") == fresh.recorder.text("fresh")
