"""What the service and the runtime report for the server's metrics (beyond Ollama): events, no exporter.

The layers below the server call a ``Metrics`` at the moments that matter (a first token, a finished
answer's token counts, a runner loaded, unloaded or crashed); this base ignores every event, so a
scheduler or service built without one (the tests, the CLI) counts nothing. ``server/metrics.py``
implements it with Prometheus counters and histograms, and reads what is a state rather than an event
(the queue, the loaded models) from the scheduler at scrape time. ``model`` is always a model's short
name (``smol:latest``) as the store resolved it, never a name a client typed, so that labels stay few.
"""

from __future__ import annotations

__all__ = ["NO_METRICS", "Metrics"]


class Metrics:
    """Every event ignored; the server's Prometheus metrics override each method."""

    def first_token(self, model: str, seconds: float) -> None:
        """A completion's first token, ``seconds`` after its request arrived (waiting and loading included)."""

    def tokens(self, model: str, *, prompt: int, generated: int) -> None:
        """A finished completion's or embedding's token counts (its final ``prompt_eval_count``, ``eval_count``)."""

    def model_loaded(self, model: str) -> None:
        """A runner finished loading ``model`` (a reload, after a crash or for other options, counts again)."""

    def model_unloaded(self, model: str) -> None:
        """A runner of ``model`` left memory, for whatever reason (keep-alive, eviction, a crash, shutdown)."""

    def runner_crashed(self, model: str) -> None:
        """A runner of ``model`` died without being asked to: while loading, or later (a signal, killed, hung)."""


NO_METRICS = Metrics()
