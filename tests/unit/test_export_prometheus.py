"""Prometheus files from Workbench's alert rules: the same condition, on the gauges the engine sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workbench.cli.export import output_dir
from workbench.errors import PermissionDeniedError, ValidationError
from workbench.export.prometheus import alerting_rules, expression, scrape_config
from workbench.export.targets import targets, targets_file, write_targets
from workbench.specs.monitor import AlertRuleSpec


def _rule(**fields: object) -> AlertRuleSpec:
    base: dict[str, object] = {
        "name": "drifting",
        "monitor": "churn-mon",
        "series": "drift_share",
        "op": ">=",
    }
    return AlertRuleSpec.model_validate({**base, "threshold": 0.25, **fields})


def test_a_scalar_series_is_the_monitor_value_gauge_with_the_rules_condition() -> None:
    assert expression(_rule()) == 'workbench_monitor_value{monitor="churn-mon",series="drift_share"} >= 0.25'
    assert expression(_rule(series="latency_p99_ms", op=">", threshold=250)) == (
        'workbench_monitor_value{monitor="churn-mon",series="latency_p99_ms"} > 250.0'
    )


def test_a_column_drift_series_is_the_drift_score_of_that_column_and_quotes_are_escaped() -> None:
    assert expression(_rule(series='drift:plan "pro"', op=">", threshold=0.1)) == (
        "max by (monitor, endpoint, column) "
        '(workbench_drift_score{monitor="churn-mon",column="plan \\"pro\\""}) > 0.1'
    )


def test_rules_carry_for_severity_the_rule_name_and_what_prometheus_cannot_do() -> None:
    (group,) = alerting_rules([_rule(for_s=1.5, severity="critical", cooldown_s=60), _rule(name="a-b")])[
        "groups"
    ]
    first, second = group["rules"]
    assert (first["alert"], second["alert"]) == ("Workbench_a_b", "Workbench_drifting")
    assert "for" not in first
    assert second["for"] == "1500ms"
    assert second["labels"] == {"severity": "critical", "rule": "drifting", "monitor": "churn-mon"}
    assert second["annotations"]["workbench_cooldown"] == "60000ms"
    assert second["annotations"]["workbench_actions"] == "notify"


def test_the_scrape_config_discovers_targets_from_the_control_planes_file(tmp_path: Path) -> None:
    written = write_targets(tmp_path, targets("http://127.0.0.1:8765", "http://127.0.0.1:8766", "local"))
    assert written == targets_file(tmp_path)
    assert json.loads(written.read_text()) == [
        {
            "targets": ["127.0.0.1:8765"],
            "labels": {"component": "control-plane", "__metrics_path__": "/api/v1/metrics"},
        },
        {"targets": ["127.0.0.1:8766"], "labels": {"component": "router", "backend": "local"}},
    ]
    config = yaml.safe_load(yaml.safe_dump(scrape_config(written, tmp_path / "rules.yml")))
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"] == [{"files": [str(written)], "refresh_interval": "30s"}]
    assert job["honor_labels"] is True
    assert config["rule_files"] == [str(tmp_path / "rules.yml")]


def test_an_output_directory_outside_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert output_dir(str(root / "new" / "dir"), (root,)) == root / "new" / "dir"
    with pytest.raises(PermissionDeniedError, match="outside the allowed roots"):
        output_dir(str(root / ".." / "elsewhere"), (root,))
    (root / "file").write_text("x")
    with pytest.raises(ValidationError, match="not a directory"):
        output_dir(str(root / "file"), (root,))
