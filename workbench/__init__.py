"""Workbench: take a trained model from the registry to a live, monitored endpoint and back."""

from workbench._version import __version__

__all__ = ["__version__"]
