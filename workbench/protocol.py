"""Names the client and the server must agree on, kept apart so the client imports no server code."""

API_PREFIX = "/api/v1"
ACTOR_HEADER = "x-workbench-actor"
VERSION_HEADER = "x-workbench-model-version"
