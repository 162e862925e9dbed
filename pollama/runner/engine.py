"""The batching loop: every step decodes prompt chunks and next tokens of all active sequences at once.

Up to ``num_parallel`` sequences share one llama.cpp context, each in its own slot (sequence id).
A step fills one batch with the next token of every generating sequence, then as many pending
prompt tokens as fit, calls ``llama_decode`` once, and samples every sequence that produced logits.
Requests arrive and leave between steps, so a new one starts while others are mid-answer and a
cancelled one frees its slot before the next step.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from pollama.runner.batches import put
from pollama.runner.constraint import Constraint, ConstraintError, tokenizer_for
from pollama.runner.draft_budget import Acceptance, DraftBudget
from pollama.runner.draft_model import DraftModel, DraftRequest
from pollama.runner.drafts import NgramDrafter
from pollama.runner.messages import Control, DoneEvent, EmbedResult, ErrorEvent, Event, Sampling, TokenEvent
from pollama.runner.model import LoadedModel
from pollama.runner.sampling import Sampler, token_logprobs
from pollama.runner.saved_prefixes import SavedPrefixes
from pollama.runner.slots import (
    Slot,
    choose_slot,
    common_prefix_length,
    longest_prefix,
    shift_amount,
    truncate_prompt,
)
from pollama.runner.text import TextStream
from pollama.runner.vision import ImagePiece, Vision, VisionError, is_image_token

__all__ = ["Engine", "PROMPT_TOO_LONG", "embedding_groups"]

Emit = Callable[[str, Event], None]  # a request id and its event

PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten the prompt, "
    "adjust the context length in settings, or use a model with a longer context length"
)
FILL_CONTEXT = -2
# A prefix held by another slot is copied (its whole KV stream) rather than evaluated again from this many
# tokens on: a copy costs about what evaluating a few tokens does, whatever the prefix's length.
SHARED_PREFIX_MIN = 64
# Host memory for slot caches saved when another prompt takes their slot (runner.saved_prefixes): SmolLM2
# keeps 23 KB a token, Qwen2.5-Coder-0.5B 12 KB, so this is a few conversations of thousands of tokens.
SAVED_PREFIX_BYTES = 128 << 20


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Job:
    """One completion or embedding request, from arrival to its last event."""

    id: str
    tokens: list[int]
    embed: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    control: Control = field(default_factory=Control)
    slot: Slot | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    sampler: Sampler | None = None
    constraint: Constraint | None = None  # the request's format, when it has one
    stream: TextStream | None = None
    generated: list[int] = field(default_factory=list)
    next_token: int | None = None  # sampled, not yet decoded
    batch_index: int = -1  # where this job's logits are in the current batch
    prompt_evaluated: int = 0
    started_ns: int = 0
    first_token_ns: int = 0
    images: list[tuple[int, ImagePiece]] = field(default_factory=list)  # where in ``tokens`` each image starts
    drafter: NgramDrafter | None = None  # speculative decoding: guesses from the job's own tokens
    drafts: list[int] = field(default_factory=list)  # decoded after next_token this step, not yet accepted
    acceptance: Acceptance = field(default_factory=Acceptance)  # how often its drafts were right

    def image_at(self, position: int) -> tuple[int, ImagePiece] | None:
        """The image whose positions include ``position``, with its start."""
        for start, piece in self.images:
            if start <= position < start + piece.n_tokens:
                return start, piece
        return None

    @property
    def limit(self) -> int:
        return self.sampling.num_predict

    # A job gets its slot, sampler and text stream when admitted; these are for the code after that.
    @property
    def held_slot(self) -> Slot:
        assert self.slot is not None, "the job has no slot yet"
        return self.slot

    @property
    def active_sampler(self) -> Sampler:
        assert self.sampler is not None, "the job has no sampler yet"
        return self.sampler

    @property
    def text_stream(self) -> TextStream:
        assert self.stream is not None, "the job has no text stream yet"
        return self.stream


class Engine:
    def __init__(
        self,
        model: LoadedModel,
        num_parallel: int,
        emit: Emit,
        *,
        before_first_decode: Callable[[], None] | None = None,
        vision: Vision | None = None,
        draft_tokens: int = 0,
        draft_model: DraftModel | None = None,
    ):
        self.model = model
        self.draft_tokens = draft_tokens  # a step's drafts a sequence, at most: from draft_model, else n-grams
        self.draft_model = draft_model
        self.draft_budget = DraftBudget(draft_tokens) if draft_tokens else None
        self._timed_step = False  # whether this step's batch only generates: its time tells what drafts cost
        self.emit = emit
        self.vision = vision
        self._before_first_decode = before_first_decode
        self.slots = [Slot(seq_id) for seq_id in range(num_parallel)]
        self.saved = SavedPrefixes(SAVED_PREFIX_BYTES)
        self.waiting: deque[Job] = deque()
        self.active: list[Job] = []
        self._steps = 0
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)
        self._image_batch = llama_cpp.llama_batch_init(model.n_batch, vision.n_embd, 1) if vision else None

    # --- requests in and out -------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.active)

    def submit(self, job: Job) -> None:
        self.waiting.append(job)

    def cancel(self, job_id: str) -> None:
        for job in [job for job in self.waiting if job.id == job_id]:
            self.waiting.remove(job)
            self._drop_images(job)
        for job in self.active:
            if job.id == job_id:
                self._release(job)

    def close(self) -> None:
        for job in list(self.active):
            self._release(job)
        llama_cpp.llama_batch_free(self._batch)
        if self._image_batch is not None:
            llama_cpp.llama_batch_free(self._image_batch)

    def _drop_images(self, job: Job) -> None:
        if self.vision is not None:
            for _start, piece in job.images:
                self.vision.release(piece)

    def _release(self, job: Job) -> None:
        self.active.remove(job)
        self._drop_images(job)
        if job.sampler is not None:
            job.sampler.close()
        if self.draft_budget is not None:
            self.draft_budget.finish(job.acceptance)
        if job.slot is not None:
            job.slot.busy = False
            job.slot.last_used = self._steps

    def _fail(self, job: Job, status: int, message: str) -> None:
        self._release(job)
        self.emit(job.id, ErrorEvent(message, status))

    # --- one step --------------------------------------------------------------------------------

    def step(self) -> None:
        self._steps += 1
        self._admit()
        if self._before_first_decode is not None and self.active:
            hook, self._before_first_decode = self._before_first_decode, None
            hook()
        if embedding := [job for job in self.active if job.embed]:
            self._embed(embedding)
        if self.vision is not None:
            self._decode_images(self.vision)
        started = time.perf_counter()
        batch_jobs = self._fill_batch()
        if batch_jobs:
            self._decode(self._batch, batch_jobs)
            if self.draft_budget is not None and self._timed_step:  # then every job in it generates
                drafts = sum(len(job.drafts) for job in batch_jobs)
                self.draft_budget.record(len(batch_jobs), drafts, time.perf_counter() - started)

    def _decode(self, batch: llama_cpp.llama_batch, jobs: list[Job], *, what: str = "") -> bool:
        """Decode ``batch`` (which holds ``jobs``) and sample the jobs it gave logits for; False if it failed."""
        status = llama_cpp.llama_decode(self.model.context, batch)
        if status != 0:
            for job in jobs:
                job.held_slot.cached = []
                llama_cpp.llama_memory_seq_rm(self.model.memory, job.held_slot.seq_id, 0, -1)
                self._fail(job, 500, f"llama_decode failed with status {status}{what}")
            return False
        for job in jobs:
            if job.drafts:
                self._sample_drafted(job)
            elif job.batch_index >= 0:
                self._sample(job)
        return True

    def _admit(self) -> None:
        while self.waiting:
            job = self.waiting[0]
            if self._prefix_coming(job):
                return  # first in, first out: the jobs behind it wait too, for a step or two
            # An embedding clears its slot's cache afterwards: give it the least recently used one.
            choice = choose_slot(self.slots, [] if job.embed else job.tokens)
            if choice is None:
                return
            self.waiting.popleft()
            slot, reusable = choice
            try:
                self._start(job, slot, reusable)
            except RequestError as error:
                self._drop_images(job)
                self.emit(job.id, ErrorEvent(str(error), error.status))

    def _prefix_coming(self, job: Job) -> bool:
        """Whether a job still evaluating its prompt will soon hold a longer prefix of ``job``'s than any cache does.

        Requests that arrive together with the same long system prompt then evaluate it once: the first
        evaluates it, the others wait until it is in the cache and copy it.
        """
        if job.embed or job.images:
            return False
        for other in self.active:
            if other.embed or not other.pending:
                continue
            coming = min(common_prefix_length(other.tokens, job.tokens), len(job.tokens) - 1)
            if len(other.held_slot.cached) >= coming:
                continue  # already there: the job copies it now
            elsewhere = longest_prefix([slot for slot in self.slots if slot is not other.slot], job.tokens)
            if coming >= (elsewhere[1] if elsewhere else 0) + SHARED_PREFIX_MIN:
                return True
        return False

    def _copy_shared_prefix(self, slot: Slot, tokens: list[int], reusable: int) -> int:
        """Copy another slot's cache into ``slot`` when it holds a longer prefix of ``tokens``; what is reusable now."""
        found = longest_prefix([other for other in self.slots if other is not slot], tokens)
        if found is None:
            return reusable
        donor, shared = found
        shared = min(shared, len(tokens) - 1)
        if shared < reusable + SHARED_PREFIX_MIN or any(is_image_token(token) for token in donor.cached[:shared]):
            return reusable
        memory = self.model.memory
        llama_cpp.llama_memory_seq_rm(memory, slot.seq_id, 0, -1)
        # Across KV streams (one per sequence) llama.cpp copies the whole stream at the next decode; the
        # cells past the prefix are then dropped from the copy by the caller's seq_rm.
        llama_cpp.llama_memory_seq_cp(memory, donor.seq_id, slot.seq_id, -1, -1)
        slot.cached = list(donor.cached)
        return shared

    def _save_before_reuse(self, slot: Slot, tokens: list[int]) -> None:
        """Save the slot's cache to host memory when ``tokens`` would overwrite a long part of it."""
        cached = slot.cached
        if len(cached) - common_prefix_length(cached, tokens) < SHARED_PREFIX_MIN or self.saved.holds(cached):
            return
        if any(is_image_token(token) for token in cached):
            return
        if any(other.cached[: len(cached)] == cached for other in self.slots if other is not slot):
            return  # another slot holds it
        context, seq = self.model.context, slot.seq_id
        size = llama_cpp.llama_state_seq_get_size(context, seq)
        if size > self.saved.capacity:
            return
        buffer = (ctypes.c_uint8 * size)()
        if written := llama_cpp.llama_state_seq_get_data(context, buffer, size, seq):
            self.saved.add(cached, bytes(buffer)[:written])

    def _restore_saved_prefix(self, slot: Slot, tokens: list[int], reusable: int) -> int:
        """Restore a saved cache into ``slot`` when it holds a longer prefix of ``tokens``; what is reusable now."""
        found = self.saved.best(tokens)
        if found is None:
            return reusable
        saved, shared = found
        shared = min(shared, len(tokens) - 1)
        if shared < reusable + SHARED_PREFIX_MIN:
            return reusable
        llama_cpp.llama_memory_seq_rm(self.model.memory, slot.seq_id, 0, -1)
        state = (ctypes.c_uint8 * len(saved.state)).from_buffer_copy(saved.state)
        if not llama_cpp.llama_state_seq_set_data(self.model.context, state, len(saved.state), slot.seq_id):
            llama_cpp.llama_memory_seq_rm(self.model.memory, slot.seq_id, 0, -1)
            slot.cached = []
            return 0
        slot.cached = list(saved.tokens)
        return shared

    def _start(self, job: Job, slot: Slot, reusable: int) -> None:
        model = self.model
        if not job.tokens:
            raise RequestError(400, "the prompt is empty")
        if job.embed:
            if len(job.tokens) > model.n_ctx_seq:
                raise RequestError(400, "the input length exceeds the context length")
            reusable = 0
        elif len(job.tokens) >= model.n_ctx_seq:
            # Cutting the middle out of a prompt could cut an image in two: one with images must fit.
            if not job.control.shift or job.limit == FILL_CONTEXT or job.images:
                raise RequestError(400, PROMPT_TOO_LONG)
            job.tokens = truncate_prompt(job.tokens, model.n_ctx_seq, job.sampling.num_keep, model.add_bos)
            reusable = common_prefix_length(slot.cached, job.tokens)
        if not job.embed:
            if job.control.grammar:
                job.constraint = _constraint(model, job.control)
            job.sampler = Sampler(job.sampling, n_vocab=model.n_vocab, n_ctx=model.n_ctx_seq)
            job.sampler.remember_prompt([token for token in job.tokens if not is_image_token(token)])
            job.stream = TextStream(job.sampling.stop)
            if self.draft_budget is not None:
                job.acceptance = self.draft_budget.start()
            if self.draft_tokens and self.draft_model is None:
                job.drafter = NgramDrafter()
                job.drafter.extend([token for token in job.tokens if not is_image_token(token)])
        if not job.embed and not job.images:
            self._save_before_reuse(slot, job.tokens)
            reusable = self._copy_shared_prefix(slot, job.tokens, reusable)
            reusable = self._restore_saved_prefix(slot, job.tokens, reusable)
        # Logits are needed for the last prompt token, so at least that one is decoded again.
        reusable = min(reusable, len(job.tokens) - 1)
        if inside := job.image_at(reusable):
            reusable = inside[0]  # an image is decoded whole or not at all
        if not llama_cpp.llama_memory_seq_rm(model.memory, slot.seq_id, reusable, -1):
            llama_cpp.llama_memory_seq_rm(model.memory, slot.seq_id, 0, -1)
            reusable = 0
        slot.cached = slot.cached[:reusable]
        slot.busy = True
        job.slot = slot
        job.pending = job.tokens[reusable:]
        job.started_ns = time.perf_counter_ns()
        self.active.append(job)

    def _fill_batch(self) -> list[Job]:
        """Choose this step's tokens and write them into the batch, sequence by sequence in seq-id order.

        The order matters: with a KV cache split per sequence, llama.cpp decodes a batch whose
        sequences are out of order in several pieces, which costs a third of the batching gain.
        """
        # The context's batch holds at least one token per sequence (see model.load), so every
        # generating sequence gets its next token in; prompt chunks fill the room that is left.
        planned: list[tuple[Job, list[int]]] = []
        for job in self.active:
            job.batch_index = -1
            job.drafts = []
            if job.next_token is not None:
                planned.append((job, [job.next_token]))
                job.next_token = None
        room = self.model.n_batch - len(planned)
        self._timed_step = bool(planned)
        if self.draft_budget is not None and planned:
            room = self._add_drafts(planned, room, self.draft_budget)
        for job in self.active:
            if room <= 0:
                break
            if job.embed or not job.pending or is_image_token(job.pending[0]):
                continue
            text = next((i for i, token in enumerate(job.pending[:room]) if is_image_token(token)), room)
            chunk, job.pending = job.pending[:text], job.pending[text:]
            job.prompt_evaluated += len(chunk)
            room -= len(chunk)
            planned.append((job, chunk))
            self._timed_step = False

        batch = self._batch
        batch.n_tokens = 0
        planned.sort(key=lambda entry: entry[0].held_slot.seq_id)
        for job, tokens in planned:
            wants_logits = not job.pending  # a generated token, or the end of the prompt
            first = batch.n_tokens
            for token in tokens:
                # With drafts, the next token and each draft get logits: each is checked in turn.
                put(batch, token, len(job.held_slot.cached), job.held_slot.seq_id, output=bool(job.drafts))
                job.held_slot.cached.append(token)
            if wants_logits:
                batch.logits[batch.n_tokens - 1] = True
                job.batch_index = first if job.drafts else batch.n_tokens - 1
        return [job for job, _tokens in planned]

    def _decode_images(self, vision: Vision) -> None:
        """Decode the images at the head of pending prompts, as embedding batches of their own.

        Text and embeddings cannot share a llama.cpp batch; images of several sequences can, so
        concurrent requests with images are batched like text, only in a batch apart.
        """
        while planned := self._plan_images(vision):
            batch = self._image_batch
            assert batch is not None
            batch.n_tokens = 0
            row_bytes = vision.n_embd * ctypes.sizeof(ctypes.c_float)
            base = ctypes.addressof(batch.embd.contents)
            for job, _piece, rows in planned:
                count = len(rows)
                ctypes.memmove(base + batch.n_tokens * row_bytes, rows.ctypes.data, rows.nbytes)
                cached = job.held_slot.cached
                for index in range(count):
                    row = batch.n_tokens
                    batch.pos[row] = len(cached)
                    batch.n_seq_id[row] = 1
                    batch.seq_id[row][0] = job.held_slot.seq_id
                    batch.logits[row] = False
                    batch.n_tokens += 1
                    cached.append(job.pending[index])
                job.pending = job.pending[count:]
                job.prompt_evaluated += count
                job.batch_index = -1
                if not job.pending:  # the prompt ends with this image: its last position gives the logits
                    batch.logits[batch.n_tokens - 1] = True
                    job.batch_index = batch.n_tokens - 1
            non_causal = any(vision.non_causal(piece) for _job, piece, _rows in planned)
            if non_causal:
                llama_cpp.llama_set_causal_attn(self.model.context, False)
            try:
                decoded = self._decode(batch, [job for job, _piece, _rows in planned], what=" on an image")
            finally:
                if non_causal:
                    llama_cpp.llama_set_causal_attn(self.model.context, True)
            if not decoded:
                return

    def _plan_images(self, vision: Vision) -> list[tuple[Job, ImagePiece, np.ndarray]]:
        """What goes into the next image batch: each job's image and the rows of its embeddings to decode."""
        planned: list[tuple[Job, ImagePiece, np.ndarray]] = []
        room = self.model.n_batch
        for job in list(self.active):
            if job.embed or not job.pending or not is_image_token(job.pending[0]):
                continue
            found = job.image_at(len(job.held_slot.cached))
            if found is None:  # a stand-in outside any image: cannot happen but by a bug; fail, not loop
                self._fail(job, 500, "an image position without its image")
                continue
            start, piece = found
            offset = len(job.held_slot.cached) - start
            count = piece.n_tokens - offset
            whole = vision.non_causal(piece)
            if whole and count > self.model.n_batch:
                self._fail(job, 400, f"an image takes {count} positions: num_batch must be at least that")
                continue
            count = min(count, room)
            if count <= 0 or (whole and count < piece.n_tokens - offset):
                break  # the next batch takes it
            try:
                embeddings = vision.embeddings(piece)
            except VisionError as error:
                self._fail(job, 500, str(error))
                continue
            planned.append((job, piece, np.ascontiguousarray(embeddings[offset : offset + count], dtype=np.float32)))
            room -= count
        return planned

    # --- after a decode --------------------------------------------------------------------------

    def _draw(self, job: Job) -> int:
        """The next token; under a format, drawn again if it shows the answer skipping the thinking."""
        context, index, constraint = self.model.context, job.batch_index, job.constraint
        if constraint is None:
            return job.active_sampler.sample(context, index)
        constraint.restrict(context, index)
        token = job.active_sampler.sample(context, index)
        if constraint.awaits_opening and constraint.skips_thinking(self.model.piece(token)):
            constraint.restrict(context, index)
            token = job.active_sampler.sample(context, index)
        return token

    def _sample(self, job: Job) -> None:
        model = self.model
        now = time.perf_counter_ns()
        if not job.first_token_ns:
            job.first_token_ns = now
            if job.limit == 0:
                self._finish(job, "length")
                return
        token = self._draw(job)
        job.generated.append(token)
        if job.drafter is not None:
            job.drafter.extend([token])
        if model.is_end_of_generation(token):  # no text, and (as in Ollama) no logprobs entry
            self._finish(job, "stop")
            return
        logprobs = [self._logprob(job, token)] if job.control.logprobs else None
        piece = model.piece(token)
        emission = job.text_stream.push(piece)
        if emission.text or logprobs:
            self.emit(job.id, TokenEvent(emission.text, logprobs))
        constraint = job.constraint
        if constraint is not None:
            constraint.advance(token, piece)
        if emission.stopped or constraint is not None and constraint.failed:
            self._finish(job, "stop")
        elif (
            len(job.generated) >= self._max_tokens(job)
            or len(job.held_slot.cached) + 1 > model.n_ctx_seq
            and not self._shift(job)
        ):
            self._finish(job, "length")
        else:
            job.next_token = token

    def _add_drafts(self, planned: list[tuple[Job, list[int]]], room: int, budget: DraftBudget) -> int:
        """Add drafts after each generating job's next token, as many as the budget says pay and the batch
        holds; the room left."""
        limits, left = [], room
        for job, _tokens in planned:
            limits.append(max(0, min(self._draft_limit(job), left)))
            left -= limits[-1]
        ngrams = [
            job.drafter.propose(limit) if job.drafter is not None else []
            for (job, _), limit in zip(planned, limits, strict=True)
        ]
        if self.draft_model is None:
            limits = [len(proposal) for proposal in ngrams]  # n-gram drafts are known before choosing
        counts = budget.choose([(job.acceptance, limit) for (job, _), limit in zip(planned, limits, strict=True)])
        if self.draft_model is not None:
            requests = [
                DraftRequest(job.held_slot.seq_id, job.held_slot.cached + tokens, count)
                for (job, tokens), count in zip(planned, counts, strict=True)
            ]
            proposals = self.draft_model.propose(requests)
            # A draft model catching up on a prompt or on steps without drafts makes this step no measure.
            self._timed_step = self._timed_step and self.draft_model.caught_up <= 2 * len(planned)
        else:
            proposals = [proposal[:count] for proposal, count in zip(ngrams, counts, strict=True)]
        for (job, tokens), drafts in zip(planned, proposals, strict=True):
            job.drafts = drafts
            tokens.extend(drafts)
            room -= len(drafts)
        return room

    def _draft_limit(self, job: Job) -> int:
        """How many drafts may follow the job's next token: what fits its context and could be used."""
        if job.images and self.draft_model is not None:
            return 0  # the draft model cannot see the images
        # The last sample must still find room in the context without a shift, and drafts past the
        # token limit would never be used.
        context_room = self.model.n_ctx_seq - len(job.held_slot.cached) - 2
        unanswered = self._max_tokens(job) - len(job.generated) - 1
        return min(self.draft_tokens, context_room, unanswered)

    def _sample_drafted(self, job: Job) -> None:
        """Sample the next token and then after each draft, as long as the samples agree with the drafts.

        Each sample is the one the job would draw without drafts (same logits, same sampler state), so the
        answer is the same; a draft that differs from its sample, and every draft after it, leave the cache.
        """
        drafts = job.drafts
        first = job.batch_index
        for offset in range(len(drafts) + 1):
            job.batch_index = first + offset
            self._sample(job)
            if job.next_token is None:
                return  # finished
            if offset < len(drafts) and job.next_token == drafts[offset]:
                job.next_token = None  # decoded already: its cache entry stays
                continue
            job.acceptance.add(len(drafts), offset)
            rejected = len(drafts) - offset
            if rejected:
                cached = job.held_slot.cached
                llama_cpp.llama_memory_seq_rm(self.model.memory, job.held_slot.seq_id, len(cached) - rejected, -1)
                del cached[-rejected:]
            return

    def _max_tokens(self, job: Job) -> int:
        if job.limit >= 0:
            return job.limit
        if job.limit == FILL_CONTEXT:
            return self.model.n_ctx_seq
        return 10 * self.model.n_ctx_seq

    def _room_for_next(self, job: Job) -> bool:
        """Whether the next token fits the sequence's context, shifting it if full and allowed."""
        return len(job.held_slot.cached) < self.model.n_ctx_seq or self._shift(job)

    def _shift(self, job: Job) -> bool:
        """Make room in a full context by dropping tokens after the kept head; False if not allowed."""
        model = self.model
        if job.limit == FILL_CONTEXT or not job.control.shift or not model.can_shift:
            return False
        cached = job.held_slot.cached
        keep, discard = shift_amount(len(cached), job.sampling.num_keep, model.add_bos)
        seq = job.held_slot.seq_id
        llama_cpp.llama_memory_seq_rm(model.memory, seq, keep, keep + discard)
        llama_cpp.llama_memory_seq_add(model.memory, seq, keep + discard, -1, -discard)
        del cached[keep : keep + discard]
        return True

    def _logprob(self, job: Job, token: int) -> dict[str, Any]:
        top = job.control.top_logprobs
        logprob, alternatives = token_logprobs(self.model.context, job.batch_index, self.model.n_vocab, token, top)
        entry = self._describe(token, logprob)
        if top:
            entry["top_logprobs"] = [self._describe(other, value) for other, value in alternatives]
        return entry

    def _describe(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self.model.piece(token, special=True)
        return {"token": piece.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(piece)}

    def _finish(self, job: Job, reason: str) -> None:
        done_ns = time.perf_counter_ns()
        first = job.first_token_ns or done_ns
        context = None
        if job.control.return_context:
            prompt = [token for token in job.tokens if not is_image_token(token)]  # images have no token ids
            context = prompt + [t for t in job.generated if not self.model.is_end_of_generation(t)]
        event = DoneEvent(
            text=job.text_stream.flush(),
            done_reason=reason,
            # As Ollama (llama-server's cache_n + prompt_n): the whole prompt, cached part included.
            prompt_eval_count=len(job.tokens),
            prompt_cached_count=len(job.tokens) - job.prompt_evaluated,
            prompt_eval_duration=first - job.started_ns,
            eval_count=len(job.generated),
            eval_duration=done_ns - first,
            context=context,
        )
        self._release(job)
        self.emit(job.id, event)

    # --- embeddings ------------------------------------------------------------------------------

    def _embed(self, jobs: list[Job]) -> None:
        """An embedding model's inputs share batches, each a sequence of its own; a generative model's go one by one."""
        if not self.model.options.embedding:
            for job in jobs:
                self._end_embedding(job, self._mean_embedding(job))
            return
        fitting = []
        for job in jobs:
            if len(job.tokens) > self.model.n_batch:  # pooling needs the whole input in one batch
                self._end_embedding(job, RequestError(400, "the input length exceeds the context length"))
            else:
                fitting.append(job)
        for group in embedding_groups([len(job.tokens) for job in fitting], self.model.n_batch):
            self._embed_pooled([fitting[index] for index in group])

    def _embed_pooled(self, jobs: list[Job]) -> None:
        model = self.model
        batch = self._batch
        batch.n_tokens = 0
        for job in jobs:
            for position, token in enumerate(job.tokens):
                put(batch, token, position, job.held_slot.seq_id, output=True)
        run = llama_cpp.llama_encode if model.encoder_only else llama_cpp.llama_decode
        failed = run(model.context, batch) != 0
        for job in jobs:
            result: np.ndarray | RequestError = RequestError(500, "failed to compute the embedding")
            if not failed:
                try:
                    result = _floats(
                        llama_cpp.llama_get_embeddings_seq(model.context, job.held_slot.seq_id), model.n_embd
                    )
                except RequestError as error:
                    result = error
            self._end_embedding(job, result)

    def _mean_embedding(self, job: Job) -> np.ndarray | RequestError:
        """The mean of a generative model's hidden states over the input: such models pool nothing themselves."""
        model = self.model
        batch = self._batch
        seq = job.held_slot.seq_id
        total = np.zeros(model.n_embd, dtype=np.float64)
        llama_cpp.llama_set_embeddings(model.context, True)
        try:
            for start in range(0, len(job.tokens), model.n_batch):
                chunk = job.tokens[start : start + model.n_batch]
                batch.n_tokens = 0
                for offset, token in enumerate(chunk):
                    put(batch, token, start + offset, seq, output=True)
                if llama_cpp.llama_decode(model.context, batch) != 0:
                    return RequestError(500, "failed to compute the embedding")
                for index in range(len(chunk)):
                    total += _floats(llama_cpp.llama_get_embeddings_ith(model.context, index), model.n_embd)
        except RequestError as error:
            return error
        finally:
            llama_cpp.llama_set_embeddings(model.context, False)
        return total / len(job.tokens)

    def _end_embedding(self, job: Job, result: np.ndarray | RequestError) -> None:
        llama_cpp.llama_memory_seq_rm(self.model.memory, job.held_slot.seq_id, 0, -1)
        job.held_slot.cached = []
        if isinstance(result, RequestError):
            self._fail(job, result.status, str(result))
        else:
            self._release(job)
            self.emit(job.id, EmbedResult(result.tolist(), len(job.tokens)))


def embedding_groups(lengths: list[int], budget: int) -> list[list[int]]:
    """The inputs (by index, in order) that go into each batch: as many as fit in ``budget`` tokens."""
    groups: list[list[int]] = []
    used = budget
    for index, length in enumerate(lengths):
        if used + length > budget:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += length
    return groups


def _floats(pointer: Any, count: int) -> np.ndarray:
    if not pointer:
        raise RequestError(500, "the model produced no embedding")
    array = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(array, shape=(count,)).astype(np.float64)


def _constraint(model: LoadedModel, control: Control) -> Constraint:
    """The request's constraint; ``grammar_fallback`` is tried when ``grammar`` names tokens this model lacks."""
    tokenizer = tokenizer_for(model.vocab, model.n_vocab)
    after, opening = control.grammar_after, control.grammar_opening
    failure = ""
    for candidate in filter(None, (control.grammar, control.grammar_fallback)):
        try:
            return Constraint(tokenizer, candidate, model.n_vocab, start_after=after, opening=opening)
        except ConstraintError as error:
            failure = str(error)
    raise RequestError(400, failure)
