"""OpenAPI links: how the answer of one operation feeds the next (create → read, act, delete).

They document the API's workflows and let a stateful fuzzer (schemathesis) chain calls to reach the
operations that need an existing resource. Targets are named by ``operationRef`` (a JSON pointer into
``paths``), so they do not depend on FastAPI's generated operation ids. ``responses(...)`` is what a route
decorator takes as ``responses=``.
"""

from __future__ import annotations

from typing import Any

from workbench.protocol import API_PREFIX

__all__ = [
    "ALIAS_SET",
    "ENDPOINT_CREATED",
    "ENDPOINT_DEPLOYED",
    "ENDPOINT_LISTED",
    "MODEL_LISTED",
    "MONITOR_CREATED",
    "ROLLOUT_CREATED",
    "ROLLOUT_LISTED",
    "RULE_CREATED",
    "RUN_CREATED",
    "SCHEDULE_CREATED",
    "VERSION_CREATED",
    "link",
    "responses",
]

Link = dict[str, Any]


def link(method: str, path: str, *, body: Any = None, **parameters: str) -> Link:
    """A link to ``method path`` (a path as the routers declare it, without the API prefix)."""
    pointer = f"{API_PREFIX}{path}".replace("~", "~0").replace("/", "~1")
    definition: Link = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        definition["parameters"] = parameters
    if body is not None:
        definition["requestBody"] = body
    return definition


def responses(status: int, description: str, links: dict[str, Link]) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": description, "links": links}}


def _endpoint(name: str) -> dict[str, Link]:
    """Everything done to an endpoint, given a runtime expression of its name."""
    path = "/endpoints/{name}"
    return {
        "GetEndpoint": link("get", path, name=name),
        "UpdateEndpoint": link("put", path, name=name, body={"name": name}),
        "DeleteEndpoint": link("delete", path, name=name),
        "Deploy": link("post", f"{path}/deploy", name=name),
        "EndpointStatus": link("get", f"{path}/status", name=name),
        "Rollback": link("post", f"{path}/rollback", name=name),
        "History": link("get", f"{path}/history", name=name),
        "Rejected": link("get", f"{path}/rejected", name=name),
        "StartRollout": link("post", "/rollouts", body={"spec": {"endpoint": name}}),
        "CreateMonitor": link("post", "/monitors", body={"spec": {"endpoint": name}}),
        "Series": link("get", "/series", endpoint=name),
        "LabelledData": link("get", "/labelled-data", endpoint=name),
    }


def _version(name: str, version: str) -> dict[str, Link]:
    """Everything done with a model version, given runtime expressions of its model and number."""
    uri = f"models:/{{{name}}}/{{{version}}}"
    return {
        "GetModel": link("get", "/models/{name}", name=name),
        "ListVersions": link("get", "/models/{name}/versions", name=name),
        "GetVersion": link("get", "/models/{name}/versions/{version}", name=name, version=version),
        "SetAlias": link("put", "/models/{name}/aliases/{alias}", name=name, body={"version": version}),
        "Resolve": link("get", "/resolve", uri=uri),
        "CreateEndpoint": link("post", "/endpoints", body={"routes": [{"model": uri, "weight": 100}]}),
        "DeployVersion": link("post", "/endpoints/{name}/deploy", body={"model": uri}),
    }


def _rollout(rollout_id: str) -> dict[str, Link]:
    return {
        "GetRollout": link("get", "/rollouts/{rollout_id}", rollout_id=rollout_id),
        "ActOnRollout": link("post", "/rollouts/{rollout_id}/{action}", rollout_id=rollout_id),
    }


ENDPOINT_CREATED = responses(
    201, "The endpoint as stored, at revision 1.", _endpoint("$response.body#/spec/name")
)
ENDPOINT_DEPLOYED = responses(200, "The endpoint as stored now.", _endpoint("$response.body#/spec/name"))
ENDPOINT_LISTED = responses(200, "Every endpoint definition.", _endpoint("$response.body#/0/spec/name"))
VERSION_CREATED = responses(
    201, "The new version.", _version("$response.body#/name", "$response.body#/version")
)
MODEL_LISTED = responses(
    200, "Every registered model.", _version("$response.body#/0/name", "$response.body#/0/latest_version")
)
ALIAS_SET = responses(
    200,
    "The version the alias names now.",
    {
        "DeleteAlias": link(
            "delete", "/models/{name}/aliases/{alias}", name="$request.path.name", alias="$request.path.alias"
        ),
        "ResolveAlias": link("get", "/resolve", uri="models:/{$request.path.name}@{$request.path.alias}"),
    },
)
ROLLOUT_CREATED = responses(201, "The rollout, started.", _rollout("$response.body#/id"))
ROLLOUT_LISTED = responses(200, "Rollouts, newest first.", _rollout("$response.body#/0/id"))
MONITOR_CREATED = responses(
    201,
    "The monitor as stored.",
    {
        "MonitorStatus": link("get", "/monitors/{name}", name="$response.body#/spec/name"),
        "ListReports": link("get", "/monitors/{name}/reports", name="$response.body#/spec/name"),
        "DeleteMonitor": link("delete", "/monitors/{name}", name="$response.body#/spec/name"),
        "CreateRule": link("post", "/alert-rules", body={"spec": {"monitor": "$response.body#/spec/name"}}),
    },
)
RULE_CREATED = responses(
    201,
    "The rule as stored.",
    {
        "ListRules": link("get", "/alert-rules", monitor="$response.body#/spec/monitor"),
        "DeleteRule": link("delete", "/alert-rules/{name}", name="$response.body#/spec/name"),
    },
)
RUN_CREATED = responses(
    201,
    "The run, started.",
    {
        "ShowRun": link("get", "/runbook-runs/{run_id}", run_id="$response.body#/id"),
        "CancelRun": link("post", "/runbook-runs/{run_id}/cancel", run_id="$response.body#/id"),
        "RunNotebook": link("get", "/runbook-runs/{run_id}/notebook", run_id="$response.body#/id"),
    },
)
SCHEDULE_CREATED = responses(
    201,
    "The schedule as stored.",
    {"DeleteSchedule": link("delete", "/runbook-schedules/{name}", name="$response.body#/spec/name")},
)
