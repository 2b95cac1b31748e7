"""The control plane's HTTP API."""

from workbench.api.app import create_app
from workbench.protocol import API_PREFIX

__all__ = ["API_PREFIX", "create_app"]
