"""``pollama cluster``: serve one endpoint from pollama replicas on a Ray cluster (pollama.cluster)."""

from __future__ import annotations

import click

from pollama.cluster.options import ClusterOptions
from pollama.config import ConfigError, Settings

__all__ = ["cluster", "parse_replicas", "parse_settings"]

CLUSTER_ENV = [
    ("OLLAMA_HOST", "Address of the cluster's endpoint (default 127.0.0.1:11434)"),
    ("RAY_ADDRESS", "The Ray cluster to join when --address is not given"),
    ("POLLAMA_API_KEYS", "Comma separated API keys the endpoint requires (also POLLAMA_API_KEYS_FILE)"),
]


def parse_replicas(text: str) -> tuple[int, int]:
    """``N`` (fixed) or ``MIN-MAX`` (autoscaled)."""
    low, sep, high = text.partition("-")
    try:
        least, most = int(low), int(high if sep else low)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected N or MIN-MAX") from None
    if least < 0 or most < 1 or least > most:
        raise click.BadParameter(f"{text!r}: expected 0 <= MIN <= MAX and MAX >= 1")
    return least, most


def parse_settings(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint=what)
        settings[name] = value
    return settings


@click.command(epilog="\n".join(f"{name}: {text}" for name, text in CLUSTER_ENV))
@click.option(
    "--address",
    default="auto",
    show_default=True,
    help='Ray cluster to join ("auto": the one this machine is part of; "": a new local Ray)',
)
@click.option("--replicas", default="1", show_default=True, help="Replicas: N, or MIN-MAX to autoscale")
@click.option(
    "--target-requests",
    type=float,
    default=4.0,
    show_default=True,
    help="Requests in hand per replica that autoscaling aims at",
)
@click.option(
    "--max-requests",
    type=int,
    default=16,
    show_default=True,
    help="Requests one replica takes at once (the rest wait in Ray Serve)",
)
@click.option(
    "--models-per-replica",
    type=int,
    default=2,
    show_default=True,
    help="Models a replica keeps loaded before unloading the least recently used",
)
@click.option("--replica-cpus", type=float, default=1.0, show_default=True, help="CPUs Ray reserves per replica")
@click.option(
    "--replica-resource",
    multiple=True,
    metavar="NAME=AMOUNT",
    help="A custom Ray resource each replica needs (repeat for several)",
)
@click.option("--models-dir", default="", help="Each node's model store ({node} becomes the Ray node id)")
@click.option("--insecure", is_flag=True, help="Pull from registries over plain HTTP on first use")
@click.option(
    "--env",
    "server_env",
    multiple=True,
    metavar="NAME=VALUE",
    help="A setting for every replica's server, e.g. OLLAMA_NUM_PARALLEL=4 (repeat for several)",
)
@click.option("--name", "app_name", default="pollama", show_default=True, help="Ray Serve application name")
def cluster(
    address: str, replicas: str, target_requests: float, max_requests: int, models_per_replica: int,
    replica_cpus: float, replica_resource: tuple[str, ...], models_dir: str, insecure: bool,
    server_env: tuple[str, ...], app_name: str,
) -> None:  # fmt: skip
    """Serve pollama from replicas on a Ray cluster (needs pollama[cluster])"""
    try:
        from pollama.cluster.app import run
    except ImportError as err:
        raise click.ClickException(f"pollama cluster needs Ray: pip install 'pollama[cluster]' ({err})") from None
    try:
        config = Settings.from_env().read_api_keys_file()
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    least, most = parse_replicas(replicas)
    try:
        resources = {name: float(n) for name, n in parse_settings(replica_resource, "--replica-resource").items()}
    except ValueError:
        raise click.BadParameter("the amount must be a number", param_hint="--replica-resource") from None
    options = ClusterOptions(
        address=address, host=config.host.host or "0.0.0.0",
        port=config.host.port, app_name=app_name, min_replicas=least, max_replicas=most,
        target_ongoing_requests=target_requests, max_ongoing_requests=max_requests,
        models_per_replica=models_per_replica, replica_cpus=replica_cpus, replica_resources=resources,
        models_dir=models_dir, insecure=insecure, server_env=parse_settings(server_env, "--env"),
        api_keys=config.api_keys,
    )  # fmt: skip
    run(options, announce=click.echo)
