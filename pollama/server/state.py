"""What every route needs: settings, the store, the model lister, the scheduler, the answering service,
the registry client, shutdown, the metrics."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from pollama.config import Settings
from pollama.model.info import ModelLister
from pollama.registry import Downloads, RegistryClientFactory
from pollama.runtime.scheduler import Scheduler
from pollama.server.metrics import PrometheusMetrics
from pollama.server.shutdown import Shutdown
from pollama.service import AnswerService
from pollama.store import Store

__all__ = ["ServerState", "state"]


@dataclass
class ServerState:
    settings: Settings
    store: Store
    lister: ModelLister
    scheduler: Scheduler
    registry: RegistryClientFactory
    downloads: Downloads
    shutdown: Shutdown
    service: AnswerService
    metrics: PrometheusMetrics


def state(request: Request) -> ServerState:
    return request.app.state.pollama
