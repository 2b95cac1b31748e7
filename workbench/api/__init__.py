"""The control plane's HTTP API."""

from workbench.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
