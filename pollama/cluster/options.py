"""How a cluster is deployed: every setting of ``pollama cluster``, in one immutable object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClusterOptions"]


@dataclass(frozen=True)
class ClusterOptions:
    # Where Ray is: "auto" joins the cluster this machine belongs to (``ray start`` ran here), an
    # address names one, "" starts a single-node Ray for a try on one machine.
    address: str = "auto"
    host: str = "127.0.0.1"
    port: int = 11434
    app_name: str = "pollama"
    # Replicas scale between these on the requests each has in hand (Ray Serve's target_ongoing_requests).
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 4.0
    max_ongoing_requests: int = 16
    upscale_delay_s: float = 10.0
    downscale_delay_s: float = 300.0
    # How long Ray Serve's router waits for a replica to say how busy it is before trying another. Ray's
    # 0.1 s suits millisecond requests; a replica busy generating often answers later, and the request
    # then lands on a replica without its model and costs a load (seconds) instead.
    probe_deadline_s: float = 1.0
    # Models one replica keeps; the least recently used one is unloaded for another.
    models_per_replica: int = 2
    replica_cpus: float = 1.0
    # Custom Ray resources each replica needs, e.g. {"pollama": 1} to place one replica per node that
    # declares that resource (``ray start --resources '{"pollama": 1}'``).
    replica_resources: dict[str, float] = field(default_factory=dict)
    # Each node's model store: "" keeps the node's own OLLAMA_MODELS; "{node}" in it is replaced by the
    # Ray node id (for several Ray nodes on one machine, each with a store of its own).
    models_dir: str = ""
    # Registries over plain HTTP (as ``pull --insecure``), for the pulls of first use.
    insecure: bool = False
    # OLLAMA_* settings for every replica's server (OLLAMA_NUM_PARALLEL, OLLAMA_KEEP_ALIVE, ...).
    server_env: dict[str, str] = field(default_factory=dict)
    # The cluster's API keys (POLLAMA_API_KEYS of whoever deploys it); none: the endpoint is open.
    api_keys: tuple[str, ...] = field(default=(), repr=False)

    def autoscaling(self) -> dict[str, Any]:
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }

    def ingress_actor_options(self) -> dict[str, Any]:
        """The ingress holds the router that picks replicas: its probe deadlines are set in its process."""
        deadlines = {
            "RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": str(self.probe_deadline_s),
            "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S": str(max(self.probe_deadline_s, 1.0) * 3),
        }
        return {"num_cpus": 0, "runtime_env": {"env_vars": deadlines}}

    def replica_actor_options(self) -> dict[str, Any]:
        return {"num_cpus": self.replica_cpus, "resources": dict(self.replica_resources)}
