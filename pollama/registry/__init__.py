"""The OCI registry client: pull and push models, as Ollama does and with stock registries too."""

from pollama.registry.connection import Connection, RegistryClientFactory
from pollama.registry.errors import DiskFull, NotFound, RegistryError
from pollama.registry.pull import pull_model
from pollama.registry.push import push_model
from pollama.registry.transfer import Downloads, TransferTuning

__all__ = [
    "Connection",
    "DiskFull",
    "Downloads",
    "NotFound",
    "RegistryClientFactory",
    "RegistryError",
    "TransferTuning",
    "pull_model",
    "push_model",
]
