"""Draft tokens from a smaller model with the model's vocabulary (a Modelfile's ``DRAFT``): speculative decoding.

The draft model has a sequence of its own for each of the model's slots, whose cache follows the slot's:
each step it catches up with the tokens the model accepted (keeping the prefix they share) and then
guesses what follows, greedily, one decode a token for every drafting sequence at once. The engine checks
the guesses as it checks n-gram ones (``Engine._sample_drafted``): a wrong guess costs time, never a
different answer.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np

from pollama.runner.batches import put
from pollama.runner.model import LoadedModel
from pollama.runner.slots import common_prefix_length

__all__ = ["DraftModel", "DraftRequest", "MAX_VOCAB_DIFFERENCE", "vocabulary_mismatch"]

# Models of one family pad their vocabularies differently (Qwen2.5 0.5B has 151936 tokens, 7B 152064):
# as in llama.cpp's speculative example, a difference this small is no mismatch when the shared ids agree.
MAX_VOCAB_DIFFERENCE = 128
# The first ids are control tokens that families number differently without changing the text's tokens.
_FIRST_COMPARED_TOKEN = 5


@dataclass(frozen=True)
class DraftRequest:
    seq_id: int  # the slot's sequence id, which the draft model uses too
    tokens: Sequence[int]  # the slot's cache and the token about to be decoded after it
    limit: int  # drafts wanted, at most


def vocabulary_mismatch(model: LoadedModel, draft: LoadedModel) -> str | None:
    """Why ``draft`` cannot draft for ``model`` (its tokens would mean other text), or None if it can."""
    if llama_cpp.llama_vocab_type(model.vocab) != llama_cpp.llama_vocab_type(draft.vocab):
        return "its tokenizer is of another kind"
    if abs(model.n_vocab - draft.n_vocab) > MAX_VOCAB_DIFFERENCE:
        return f"its vocabulary has {draft.n_vocab} tokens, the model's {model.n_vocab}"
    if (model.add_bos, model.bos, model.eos) != (draft.add_bos, draft.bos, draft.eos):
        return "its start and end tokens differ from the model's"
    for token in range(_FIRST_COMPARED_TOKEN, min(model.n_vocab, draft.n_vocab)):
        if llama_cpp.llama_vocab_get_text(model.vocab, token) != llama_cpp.llama_vocab_get_text(draft.vocab, token):
            return f"its token {token} is another text"
    return None


class DraftModel:
    """Owns the loaded draft model and a batch of its own; ``close`` frees both."""

    def __init__(self, model: LoadedModel, target_vocab: int):
        self.model = model
        self._target_vocab = target_vocab  # a draft token the model does not have ends the drafts
        self._cached: dict[int, list[int]] = {}  # per sequence id, the tokens in the draft model's cache
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)
        self._failed = False
        self.caught_up = 0  # tokens the last ``propose`` decoded to catch up with the sequences

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        self.model.close()

    def propose(self, requests: Sequence[DraftRequest]) -> list[list[int]]:
        """For each request (in order), up to ``limit`` tokens the draft model expects after its ``tokens``."""
        drafts: list[list[int]] = [[] for _ in requests]
        self.caught_up = 0
        wanted = sorted(
            (index for index, request in enumerate(requests) if request.limit > 0 and request.tokens),
            key=lambda index: requests[index].seq_id,  # llama.cpp decodes a batch in seq-id order best
        )
        if not wanted or self._failed:
            return drafts
        firsts = self._catch_up([requests[index] for index in wanted])
        if firsts is None:
            return drafts
        drafting = []
        for index, token in zip(wanted, firsts, strict=True):
            if self._usable(token):
                drafts[index].append(token)
                if requests[index].limit > 1:
                    drafting.append(index)
        while drafting:
            batch = self._batch
            batch.n_tokens = 0
            for index in drafting:
                seq = requests[index].seq_id
                put(batch, drafts[index][-1], len(self._cached[seq]), seq, output=True)
                self._cached[seq].append(drafts[index][-1])
            if not self._decode([requests[index].seq_id for index in drafting]):
                return [[] for _ in requests]
            still = []
            for row, index in enumerate(drafting):
                token = self._greedy(row)
                if not self._usable(token):
                    continue
                drafts[index].append(token)
                if len(drafts[index]) < requests[index].limit:
                    still.append(index)
            drafting = still
        return drafts

    def _catch_up(self, requests: list[DraftRequest]) -> list[int] | None:
        """Bring each sequence's cache to its tokens; the draft model's next token after each, or None on failure."""
        memory = self.model.memory
        pending: list[Sequence[int]] = []
        for request in requests:
            cached = self._cached.setdefault(request.seq_id, [])
            # The last token is decoded again, even when cached: its logits give the first draft.
            keep = min(common_prefix_length(cached, request.tokens), len(request.tokens) - 1)
            if not llama_cpp.llama_memory_seq_rm(memory, request.seq_id, keep, -1):
                llama_cpp.llama_memory_seq_rm(memory, request.seq_id, 0, -1)
                keep = 0
            del cached[keep:]
            pending.append(request.tokens[keep:])
            self.caught_up += len(pending[-1])
        firsts = [-1] * len(requests)
        while any(pending):
            batch = self._batch
            batch.n_tokens = 0
            ends: list[tuple[int, int]] = []  # (request, row of its last token)
            for index, request in enumerate(requests):
                room = self.model.n_batch - batch.n_tokens
                if not pending[index] or room <= 0:
                    continue
                chunk, pending[index] = pending[index][:room], pending[index][room:]
                cached = self._cached[request.seq_id]
                for token in chunk:
                    put(batch, token, len(cached), request.seq_id, output=False)
                    cached.append(token)
                if not pending[index]:
                    batch.logits[batch.n_tokens - 1] = True
                    ends.append((index, batch.n_tokens - 1))
            if not self._decode([request.seq_id for request in requests]):
                return None
            for index, row in ends:
                firsts[index] = self._greedy(row)
        return firsts

    def _decode(self, seq_ids: list[int]) -> bool:
        status = llama_cpp.llama_decode(self.model.context, self._batch)
        if status == 0:
            return True
        # The model's answers never depend on the drafts: a draft model that fails only stops drafting.
        for seq in seq_ids:
            llama_cpp.llama_memory_seq_rm(self.model.memory, seq, 0, -1)
            self._cached.pop(seq, None)
        if status < 0:
            self._failed = True
            print(f"runner: the draft model failed (llama_decode status {status}); no more drafts", file=sys.stderr)
        return False

    def _greedy(self, row: int) -> int:
        logits = llama_cpp.llama_get_logits_ith(self.model.context, row)
        array = np.ctypeslib.as_array(ctypes.cast(logits, ctypes.POINTER(ctypes.c_float)), shape=(self.model.n_vocab,))
        return int(array.argmax())

    def _usable(self, token: int) -> bool:
        """A draft worth checking: one the model has, and not the end (nothing is decoded after that)."""
        return 0 <= token < self._target_vocab and not self.model.is_end_of_generation(token)
