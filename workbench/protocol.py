"""Names the client and the server must agree on, kept apart so the client imports no server code."""

API_PREFIX = "/api/v1"
ACTOR_HEADER = "x-workbench-actor"
# A changing call's key: a repeated copy (double click, retry) gets the first copy's answer, not a rerun.
IDEMPOTENCY_HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"  # "true" on an answer replayed for a repeated key
# The data plane's headers (lower case, as ASGI gives them), defined once for router, replicas and clients.
VERSION_HEADER = "x-workbench-model-version"  # the version that answered, on every response
VERSION_SELECT_HEADER = "x-workbench-version"  # pin a request to one version of the endpoint
ROUTING_KEY_HEADER = "x-workbench-routing-key"  # sticky assignment: one key, one version
PROBE_HEADER = "x-workbench-probe"  # a probe is answered but never logged or counted as traffic
SHADOW_HEADER = "x-workbench-shadow"  # a mirrored copy of a live request
REQUEST_ID_HEADER = "x-request-id"  # joins a request with its log record, its shadow and its label
BINARY_HEADER_LENGTH = "inference-header-content-length"  # OIP binary tensor data: the JSON header's size
