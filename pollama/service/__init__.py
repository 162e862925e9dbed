"""The answering service under every API, free of the web framework.

Given a typed chat, generate or embed request it validates, fits the prompt, schedules a runner,
runs it and yields typed chunks (``Chunk``), or raises domain errors (``pollama.errors``). The
native, OpenAI and Anthropic routes only translate their requests into it and frame its chunks.
"""

from pollama.service.answer import Answer, AnswerService
from pollama.service.chunks import Chunk, Stats

__all__ = ["Answer", "AnswerService", "Chunk", "Stats"]
