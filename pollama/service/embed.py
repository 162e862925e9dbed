"""Embeddings: every input of a request embedded on one runner, normalized, cut to ``dimensions``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import numpy as np

from pollama.api.native import EmbedRequest
from pollama.errors import Failed, InvalidRequest
from pollama.runner.messages import EmbedResult
from pollama.runtime.process import RunnerProcess
from pollama.service.answer import AnswerService

__all__ = ["Embeddings", "embed", "normalize", "not_found"]


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


def not_found(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


def normalize(vector: Sequence[float]) -> list[float]:
    """Scale to unit length; Ollama refuses vectors with NaN or Inf rather than return them."""
    array = np.asarray(vector, dtype=np.float64)
    if not np.isfinite(array).all():
        raise Failed("embedding contains NaN or Inf values")
    norm = float(np.sqrt(array @ array))
    scaled: list[float] = (array / norm if norm > 0 else array).tolist()
    return scaled


def _inputs(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequest("invalid input type")


async def embed(service: AnswerService, body: EmbedRequest, started_ns: int) -> AsyncGenerator[Embeddings]:
    """The request's embeddings (one item), computed when read."""
    inputs = _inputs(body.input)
    truncate = body.truncate is not False

    async def embed_all(runner: RunnerProcess) -> tuple[int, list[EmbedResult]]:
        load_ns = time.perf_counter_ns() - started_ns
        return load_ns, list(await asyncio.gather(*(runner.embed(text, truncate=truncate) for text in inputs)))

    def prompt_tokens(result: tuple[int, list[EmbedResult]]) -> int:
        return sum(embedded.prompt_eval_count for embedded in result[1])

    async for load_ns, results in service.on_runner(
        body.model, body.options, body.keep_alive, embed_all, missing=not_found(body.model), prompt_tokens=prompt_tokens
    ):
        vectors = []
        for result in results:
            vector = normalize(result.embedding)
            if body.dimensions and 0 < body.dimensions < len(vector):
                vector = normalize(vector[: body.dimensions])
            vectors.append(vector)
        yield Embeddings(
            vectors=vectors,
            total_duration=time.perf_counter_ns() - started_ns,
            load_duration=load_ns,
            prompt_eval_count=sum(result.prompt_eval_count for result in results),
        )
