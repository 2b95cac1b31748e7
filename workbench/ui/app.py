"""The pages of the served dashboards, each built per browser session from the shared context."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import panel as pn
from panel.io.resources import LOCAL_DIST

from workbench.ui.actions import ActionDesk
from workbench.ui.auth import sign_in_valid, signed_in_user
from workbench.ui.context import DashboardContext
from workbench.ui.views.progressive import after_first_paint
from workbench.ui.views.shell import ConfirmBox, header

Page = Callable[[], pn.viewable.Viewable]
log = logging.getLogger("workbench.ui")


def session_arg(name: str) -> str | None:
    """A query-string argument of the page's URL (``?name=churn``)."""
    values = (pn.state.session_args or {}).get(name)
    if not values:
        return None
    raw = values[0]
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def make_desk(context: DashboardContext) -> ActionDesk:
    return ActionDesk(
        context.client_for,
        user=signed_in_user,
        sign_in_valid=lambda: sign_in_valid(context.cookie_secret, context.session_s),
        after=context.feed.poke,
    )


def frame(page: str, body: Any, desk: ActionDesk, query: str = "") -> pn.viewable.Viewable:
    # Nothing can be proposed before the page's controls are drawn, so neither can the box that confirms.
    confirm = pn.Column(sizing_mode="stretch_width")
    after_first_paint(lambda: confirm.append(ConfirmBox(desk=desk)))
    return pn.Column(
        header(page, signed_in_user(), query),
        confirm,
        body,
        sizing_mode="stretch_width",
        styles={"padding": "6px 10px"},
    )


def _overview(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.overview import OverviewModel
    from workbench.ui.views.overview import OverviewView

    desk = make_desk(context)
    model = OverviewModel(context.feed, desk)
    return frame("overview", OverviewView(model=model), desk)


def _endpoint(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.endpoint import EndpointModel
    from workbench.ui.views.endpoint import EndpointView

    desk = make_desk(context)
    model = EndpointModel(context.feed, desk, endpoint=session_arg("name") or "")
    query = f"?name={model.endpoint}" if model.endpoint else ""
    return frame("endpoint", EndpointView(model=model), desk, query)


def _rollout(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.rollout import RolloutModel
    from workbench.ui.views.rollout import RolloutView

    desk = make_desk(context)
    model = RolloutModel(
        context.feed, desk, rollout_id=session_arg("id") or "", endpoint_name=session_arg("endpoint") or ""
    )
    return frame(
        "rollout", RolloutView(model=model), desk, f"?id={model.rollout_id}" if model.rollout_id else ""
    )


def _operations(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.operations import OperationsModel
    from workbench.ui.views.operations import OperationsView

    desk = make_desk(context)
    model = OperationsModel(context.feed, desk, run_id=session_arg("run") or "")
    return frame("operations", OperationsView(model=model), desk)


def _drift(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.drift import DriftModel
    from workbench.ui.views.drift import DriftView

    desk = make_desk(context)
    # ?endpoint= (or the header's ?name=, from an endpoint's page) picks its first monitor.
    endpoint = session_arg("endpoint") or session_arg("name") or ""
    model = DriftModel(context.feed, desk, monitor=session_arg("monitor") or "", endpoint=endpoint)
    watched = model.record.spec.endpoint if model.record is not None else endpoint
    query = f"?name={watched}&monitor={model.monitor}" if model.monitor else ""
    return frame("drift", DriftView(model=model), desk, query)


def _experiments(context: DashboardContext) -> pn.viewable.Viewable:
    from workbench.ui.models.experiment import ExperimentModel
    from workbench.ui.views.experiment import ExperimentView

    desk = make_desk(context)
    model = ExperimentModel(
        context.feed, desk, experiment=session_arg("name") or "", endpoint_name=session_arg("endpoint") or ""
    )
    # The header's endpoint and drift links go to the shown experiment's endpoint.
    query = f"?name={model.record.endpoint}" if model.record is not None else ""
    return frame("experiments", ExperimentView(model=model), desk, query)


def serve_styles_locally() -> None:
    """Components' stylesheets from this server, not Panel's CDN, in a session built ahead ('warm').

    Panel sets where its stylesheets come from on the session that renders a page's HTML. With reused
    sessions (see ``server.build_server``) the HTML comes from a kept session and the person's own
    session is built beside it, never rendered, so its components would link the CDN.
    """
    doc = pn.state.curdoc
    if doc is not None and getattr(doc, "session_context", None) is not None:
        prefix = f"{pn.state.rel_path}/" if pn.state.rel_path else ""
        doc.template_variables.setdefault("dist_url", f"{prefix}{LOCAL_DIST}")


def pages(context: DashboardContext) -> dict[str, Page]:
    """Plain functions (Panel serves a callable only if it is a function; a ``partial`` would be
    rendered as its repr)."""
    builders: dict[str, Callable[[DashboardContext], pn.viewable.Viewable]] = {
        "overview": _overview,
        "endpoint": _endpoint,
        "rollout": _rollout,
        "operations": _operations,
        "drift": _drift,
        "experiments": _experiments,
    }

    def bind(build: Callable[[DashboardContext], pn.viewable.Viewable]) -> Page:
        def page() -> pn.viewable.Viewable:
            serve_styles_locally()
            try:
                return build(context)
            except Exception:  # the traceback goes to the log; the page says what to do, not where
                incident = secrets.token_hex(4)
                log.exception("dashboard page failed to build (incident %s)", incident)
                return pn.pane.Alert(
                    f"This page could not be built (incident {incident}, in the dashboard's log). "
                    "Reload, or go back to the overview.",
                    alert_type="danger",
                )

        return page

    served = {name: bind(build) for name, build in builders.items()}
    return {"/": served["overview"], **served}
