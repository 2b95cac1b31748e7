"""The API says what it accepts: schemathesis fuzzes the control plane from its OpenAPI schema.

A real ``workbench up`` (serving backend ``none``: definitions only, no replicas) with a registered tiny
model, an alias and an endpoint, so the fuzzer's links (create → read, act, delete) reach operations that
need an existing resource. Schemathesis runs all four phases (examples, coverage, fuzzing, stateful) with
a bounded budget and a fixed seed, and the test asserts:

* no 5xx at all (the ``not_a_server_error`` check): bad input is a clear 4xx JSON error;
* no "schema validation mismatch" on the operations whose every rule the schema states: a request the
  schema allows is not refused as invalid (it may still be a 404 for a name that does not exist).

The seed makes the examples, coverage and fuzzing phases reproducible; the stateful phase draws its own
randomness, so its path through the links differs between runs. ``MAX_EXAMPLES`` keeps the run within
about a minute on two shared cores (~4,900 requests; it took four and a half while the control plane's
kept-alive connections waited ~45 ms per response on Nagle's algorithm, see ``serving/process.bind_tcp``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import free_port, plane_env
from tests.integration.conftest import tiny_frame, tiny_module
from workbench.client import Client
from workbench.launcher import ControlPlaneProcess
from workbench.registry.packaging import save_model
from workbench.registry.refs import ALIAS_RE, MODEL_NAME_RE, ModelRef, check_alias
from workbench.specs.endpoint import DEVICE_RE, ENDPOINT_NAME_RE
from workbench.specs.monitor import BASE_SERIES, NAME_RE, SERIES_PATTERN, check_series
from workbench.specs.patterns import alias_schema, json_pattern, model_ref_schema
from workbench.specs.runbook import NAME_RE as RUNBOOK_NAME_RE

SEED = 20261206
MAX_EXAMPLES = 6
PHASES = "examples,coverage,fuzzing,stateful"

# Operations whose rules the schema cannot state, so a schema-valid request may still be refused (422):
# each needs a relation between fields or parameters, or data that a generator cannot make up.
NOT_STATABLE = {
    # exactly one of `since` and `window_s`
    "GET /api/v1/labelled-data",
    # window_s / step_s gives at most 10,000 steps
    "GET /api/v1/series",
    # start <= end, at most 10,000 steps and 500,000 points: parameters tied together
    "GET /api/v1/monitor-history",
    # window_s >= every_s and window_s / every_s <= 10,000
    "POST /api/v1/monitors",
    # canary step weights increase; which fields a check may set depends on its kind
    "POST /api/v1/rollouts",
    # route weights add up to 100; on PUT, the body's name is the URL's
    "POST /api/v1/endpoints",
    "PUT /api/v1/endpoints/{name}",
    # a feature lookup names a service or features (not both) and fits the Feast registry
    "POST /api/v1/endpoints/{name}/deploy",
    # variant weights add up to 100, with distinct names and versions; a fixed method needs planned_units
    "POST /api/v1/experiments",
    # each outcome names exactly one of unit and request_id
    "POST /api/v1/experiments/{name}/outcomes",
    # start before end, and views the repository defines
    "POST /api/v1/features/materialize",
    # one timestamp per id, for an endpoint that has a feature lookup
    "POST /api/v1/features/historical",
    # labels, outcomes or both: at least one of the two lists is not empty
    "POST /api/v1/feedback",
    # a model directory or run that exists on the server; a tar.gz model archive
    "POST /api/v1/models/{name}/versions",
    "POST /api/v1/models/{name}/versions/upload",
    # a runbook takes the parameters it declares
    "POST /api/v1/runbook-schedules",
    "POST /api/v1/runbooks/{name}/runs",
}

# The long polls (`wait_s`, up to 600 s) of a runbook run and of an optimisation are pinned to 0: the
# fuzzer would otherwise wait on them past its 10 s read timeout (an optimisation the stateful phase
# started was polled with wait_s=93.8 and failed the run as a "Network Error"). The stateful phase gets
# more examples than the others: it is cheap, and it is what follows the links.
_CONFIG = """
[phases.stateful.generation]
max-examples = 25

[[operations]]
include-name = "GET /api/v1/runbook-runs/{run_id}"
parameters = { wait_s = 0 }

[[operations]]
include-name = "GET /api/v1/optimizations/{optimization_id}"
parameters = { wait_s = 0 }
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    base = tmp_path_factory.mktemp("fuzz")
    home = base / "home"
    api_port, router_port = free_port(), free_port()
    env = plane_env(home, api_port, router_port, WORKBENCH_SERVING_BACKEND="none")
    url = f"http://127.0.0.1:{api_port}"
    with ControlPlaneProcess(url, env, base / "control-plane.log") as process:
        token = (home / "api-token").read_text().strip()
        model = base / "models" / "churn"
        save_model(tiny_module(), model, input_example=tiny_frame(2)[["a", "b", "c"]])
        reference = base / "reference.parquet"
        tiny_frame().to_parquet(reference, index=False)
        with Client(url, token=token) as client:
            client.register_from_path("churn", model, reference={"path": str(reference), "target": "label"})
            client.set_alias("churn", "champion", 1)
            client.create_endpoint("churn", "models:/churn@champion")
        yield url, token
        assert process.process is not None
        assert process.process.poll() is None, f"the control plane died: {process.tail(20)}"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


@pytest.mark.slow
@pytest.mark.timeout(960)  # schemathesis's own limit is 900 s; the suite's 300 s cut it off at 303 s once
def test_fuzzing_finds_no_server_error_and_no_unstated_rule(plane: tuple[str, str], tmp_path: Path) -> None:
    url, token = plane
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG)
    report = tmp_path / "report.json"
    command = [
        _schemathesis(),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "not_a_server_error",
        "--phases",
        PHASES,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # The upload's body is opaque bytes; with the constants schemathesis mines from answers, its
        # generator sometimes filters too many candidates (a generator health check, not an API finding).
        "--suppress-health-check",
        "filter_too_much",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert report.is_file(), output
    summary = json.loads(report.read_text())
    assert summary["failures"] == [], f"{summary['failures']}\n{output}"
    assert summary["errors"] == [], f"{summary['errors']}\n{output}"
    assert result.returncode == 0, output
    mismatched = set(summary["warnings"]["validation_mismatch"]) - NOT_STATABLE
    assert not mismatched, f"the schema does not state what these refuse: {sorted(mismatched)}\n{output}"
    assert summary["test_cases"]["generated"] >= 1000, output
    assert summary["operations"]["tested"] == summary["operations"]["total"], output


# The schema's patterns are the domain's regexes: checked here, quickly, on the values that matter.


@pytest.mark.parametrize(
    ("regex", "samples"),
    [
        (ENDPOINT_NAME_RE, ["churn", "a", "a-b", "-a", "a-", "A", "a" * 63, "a" * 64]),
        (MODEL_NAME_RE, ["churn", "c.1_x-y", ".a", "a/b", "a" * 128, "a" * 129]),
        (NAME_RE, ["m", "m-1", "M", "m_"]),
        (RUNBOOK_NAME_RE, ["deploy", "re_train-1", "_x", "X"]),
        (DEVICE_RE, ["auto", "cpu", "cuda", "cuda:1", "cuda:", "gpu"]),
    ],
)
def test_schema_patterns_are_the_domain_regexes(regex: re.Pattern[str], samples: list[str]) -> None:
    pattern = json_pattern(regex)
    assert pattern == regex.pattern.removesuffix(r"\Z") + "$"
    for sample in samples:  # no trailing newlines, where ECMA-262's `$` and Python's `$` agree
        assert (re.search(pattern, sample) is not None) == (regex.match(sample) is not None), sample


def test_alias_and_model_reference_patterns_match_the_parser() -> None:
    alias = alias_schema()
    allowed, reserved = re.compile(alias["pattern"]), re.compile(alias["not"]["pattern"])
    for sample in ["champion", "_a", "a-b", "latest", "LATEST", "v1", "V12", "v1x", "1a", "a" * 65]:
        try:
            check_alias(sample)
            valid = True
        except Exception:
            valid = False
        assert valid == bool(allowed.search(sample) and not reserved.search(sample)), sample
    assert ALIAS_RE.pattern.endswith(r"\Z")
    reference = re.compile(model_ref_schema()["pattern"])
    for sample in [
        "models:/churn@champion",
        "models:/churn/3",
        "churn/01",
        "churn@champion",
        "models:/churn/0",
        "models:/churn@latest",
        "models:/churn@v2",
        "models:/churn",
        "models:/a/b/1",
        "models:/churn@x/1",
    ]:
        try:
            ModelRef.parse(sample)
            valid = True
        except Exception:
            valid = False
        assert valid == bool(reference.search(sample)), sample


def test_series_pattern_is_check_series() -> None:
    pattern = re.compile(SERIES_PATTERN)
    for sample in [*BASE_SERIES, "drift:a", "drift:", "drift", "latency", "error_rate2"]:
        try:
            check_series(sample)
            valid = True
        except ValueError:
            valid = False
        assert valid == bool(pattern.search(sample)), sample
