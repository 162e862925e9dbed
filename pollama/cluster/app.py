"""Deploying the cluster: the ingress and the replicas as one Ray Serve application."""

from __future__ import annotations

import secrets
import signal
import threading
from typing import Any

import ray
from ray import serve
from ray.serve.config import HTTPOptions, ProxyLocation

from pollama.cluster.directory import remove_directory
from pollama.cluster.ingress import Ingress
from pollama.cluster.options import ClusterOptions
from pollama.cluster.replica import Replica

__all__ = ["build", "deploy", "run", "teardown"]

# Streams stay open for a whole answer: the ingress holds every client's at once.
_INGRESS_MAX_ONGOING = 4096


def build(options: ClusterOptions, internal_key: str) -> Any:
    replicas = serve.deployment(
        name="Replica",
        max_ongoing_requests=options.max_ongoing_requests,
        autoscaling_config=options.autoscaling(),
        ray_actor_options=options.replica_actor_options(),
        health_check_period_s=5,
        graceful_shutdown_timeout_s=20,
    )(Replica)
    ingress = serve.deployment(
        name="Ingress", max_ongoing_requests=_INGRESS_MAX_ONGOING, ray_actor_options=options.ingress_actor_options()
    )(Ingress)
    return ingress.bind(replicas.bind(options, internal_key), options, internal_key)


def deploy(options: ClusterOptions, internal_key: str = "") -> str:
    """Deploy (or redeploy) the cluster on the Ray cluster this process is connected to, or joins
    ``options.address``; returns the endpoint's URL once every minimum replica serves. The replicas'
    servers take ``internal_key`` (a fresh random one by default) from the ingress; the tests pass
    their own to look inside the replicas."""
    if not ray.is_initialized():
        ray.init(address=options.address or None, log_to_driver=False)
    serve.start(http_options=HTTPOptions(host=options.host, port=options.port), proxy_location=ProxyLocation.HeadOnly)
    serve.run(
        build(options, internal_key or secrets.token_urlsafe(32)),
        name=options.app_name,
        route_prefix="/",
        blocking=False,
    )
    host = f"[{options.host}]" if ":" in options.host else options.host
    return f"http://{host}:{options.port}"


def teardown(options: ClusterOptions) -> None:
    """Remove the application (its replicas stop their servers) and its directory."""
    serve.delete(options.app_name)
    remove_directory(options.app_name)


def run(options: ClusterOptions, announce: Any = print) -> None:
    """``pollama cluster``: deploy, serve until interrupted (Ctrl-C, SIGTERM), then take it down."""
    url = deploy(options)
    announce(f"pollama cluster '{options.app_name}' listening on {url}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        teardown(options)
