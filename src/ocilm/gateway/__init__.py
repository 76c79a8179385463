"""``ocilm serve``: an OpenAI-compatible HTTP gateway for OCI models."""

from ._app import create_app
from ._config import GatewayConfig, GatewayConfigError, load_config, parse_config

__all__ = ["GatewayConfig", "GatewayConfigError", "create_app", "load_config", "parse_config"]
