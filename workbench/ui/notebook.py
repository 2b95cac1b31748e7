"""The dashboards' views inline in a notebook, following one feed per kernel.

``views = workbench.ui.notebook_views()`` starts one poller for the notebook (like the dashboard
server's, so five views cost the control plane what one does) and hands out the same Panel components
the served pages use: ``views.overview()``, ``views.endpoint("churn")``, ``views.rollout()``,
``views.drift("churn")``, ``views.operations()``. Actions act as the notebook client's actor; there is
no sign-in to check, since the notebook's own client already holds the token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from workbench.client import Client
from workbench.ui.actions import ActionDesk
from workbench.ui.feed import DashboardFeed
from workbench.ui.session import NOTEBOOK_LOCK

FIRST_DATA_WAIT_S = 15.0


class Inline(Viewer):
    """A page's view with its confirmation box, as one cell output; ``.model`` (``.view.model``) holds the
    data. It renders under ``NOTEBOOK_LOCK``: the feed's thread changes the panes, never mid-render."""

    view = param.Parameter()
    desk = param.ClassSelector(class_=ActionDesk, allow_None=True)

    @property
    def model(self) -> Any:
        return self.view.model

    def __panel__(self) -> pn.viewable.Viewable:
        from workbench.ui.views.shell import ConfirmBox

        parts = [self.view] if self.desk is None else [ConfirmBox(desk=self.desk), self.view]
        return pn.Column(*parts, sizing_mode="stretch_width")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        with NOTEBOOK_LOCK:
            return super()._repr_mimebundle_(include, exclude)


def _locked(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Builds a view with the feed's updates held off: a model half-built and half-updated draws wrong."""

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Any:
        with NOTEBOOK_LOCK:
            return factory(*args, **kwargs)

    return build


class NotebookViews:
    def __init__(self, client: Client | None = None, *, every_s: float = 1.0) -> None:
        self.client = client or Client()
        self._actor = self.client.actor or "notebook"
        self.feed = DashboardFeed(self._client_for_feed, every_s=every_s)
        self.feed.start()
        self.feed.ready.wait(FIRST_DATA_WAIT_S)
        pn.config.inline = True  # type: ignore[misc]  # Bokeh and Panel from the kernel, not a CDN (air-gapped)
        pn.extension()

    def _client_for_feed(self) -> Client:
        return self._client_as("notebook-views")

    def _client_as(self, actor: str) -> Client:
        return self.client.as_actor(actor)

    def desk(self) -> ActionDesk:
        return ActionDesk(self._client_as, user=lambda: self._actor, after=self.feed.poke)

    @_locked
    def overview(self) -> Any:
        from workbench.ui.models.overview import OverviewModel
        from workbench.ui.views.overview import OverviewView

        return Inline(view=OverviewView(model=OverviewModel(self.feed, self.desk())), desk=None)

    @_locked
    def endpoint(self, name: str) -> Any:
        from workbench.ui.models.endpoint import EndpointModel
        from workbench.ui.views.endpoint import EndpointView

        desk = self.desk()
        return Inline(view=EndpointView(model=EndpointModel(self.feed, desk, endpoint=name)), desk=desk)

    @_locked
    def rollout(self, rollout_id: str = "", *, endpoint: str = "") -> Any:
        from workbench.ui.models.rollout import RolloutModel
        from workbench.ui.views.rollout import RolloutView

        desk = self.desk()
        model = RolloutModel(self.feed, desk, rollout_id=rollout_id, endpoint_name=endpoint)
        return Inline(view=RolloutView(model=model), desk=desk)

    @_locked
    def drift(self, monitor: str = "", *, endpoint: str = "") -> Any:
        from workbench.ui.models.drift import DriftModel
        from workbench.ui.views.drift import DriftView

        desk = self.desk()
        model = DriftModel(self.feed, desk, monitor=monitor, endpoint=endpoint)
        return Inline(view=DriftView(model=model), desk=desk)

    @_locked
    def experiment(self, name: str = "", *, endpoint: str = "") -> Any:
        """An A/B experiment (or the endpoint's latest): units, decision, the confidence sequence chart."""
        from workbench.ui.models.experiment import ExperimentModel
        from workbench.ui.views.experiment import ExperimentView

        desk = self.desk()
        model = ExperimentModel(self.feed, desk, experiment=name, endpoint_name=endpoint)
        return Inline(view=ExperimentView(model=model), desk=desk)

    @_locked
    def operations(self, run_id: str = "") -> Any:
        from workbench.ui.models.operations import OperationsModel
        from workbench.ui.views.operations import OperationsView

        desk = self.desk()
        return Inline(view=OperationsView(model=OperationsModel(self.feed, desk, run_id=run_id)), desk=desk)

    def close(self) -> None:
        self.feed.stop()


def notebook_views(client: Client | None = None, *, every_s: float = 1.0) -> NotebookViews:
    return NotebookViews(client, every_s=every_s)
