"""Local GGUF models served by xllamacpp and reached through LiteLLM like any other tier."""

from ecocascade.models.local.catalogue import CATALOGUE, LocalModel, pull, resolve
from ecocascade.models.local.server import LocalServer, ServerOptions, ensure_server, shutdown

__all__ = [
    "CATALOGUE",
    "LocalModel",
    "LocalServer",
    "ServerOptions",
    "ensure_server",
    "pull",
    "resolve",
    "shutdown",
]
