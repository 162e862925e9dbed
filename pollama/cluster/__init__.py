"""Past one machine: pollama on a Ray cluster behind one endpoint (``pollama cluster``).

Ray Serve runs replicas of pollama, each a ``pollama serve`` on its node with its scheduler and runners,
and one ingress that speaks every API of a single server. Requests that name a model go to a replica
holding it (model multiplexing); replicas scale with the requests in hand. Ray is an optional extra
(``pip install 'pollama[cluster]'``): only ``pollama.cluster.app`` and the modules it imports need it;
``options``, ``routing`` and ``forwarding`` are plain Python.
"""

from pollama.cluster.options import ClusterOptions

__all__ = ["ClusterOptions"]
