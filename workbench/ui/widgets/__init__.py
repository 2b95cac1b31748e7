"""Notebook widgets (ipywidgets 8, any Jupyter frontend): deploy, steer a rollout, watch an endpoint.

Every read and change goes through a :class:`workbench.Client`, as the CLI's do, so a change made here
is made, checked and audited exactly like one made there; every change is first previewed with
:mod:`workbench.ui.plans` and runs only on Confirm.
"""

from workbench.ui.widgets.card import EndpointCard
from workbench.ui.widgets.deploy import DeployWidget
from workbench.ui.widgets.rollout import RolloutControl

__all__ = ["DeployWidget", "EndpointCard", "RolloutControl"]
