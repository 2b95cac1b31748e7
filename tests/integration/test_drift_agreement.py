"""The live drift scores (binned, ``workbench.monitoring.drift``) against Evidently's on the same data.

The live check exists to be cheap; it is only worth having if it says what Evidently's report says.
Both are given the same method per column (``methods_for`` the live profile), thresholds and drift share.

Tolerances, measured over 40 reference/current seed pairs of the demo generator (3,000 rows each):

* Wasserstein on a column with at most 1,024 distinct values (ages, counts, amounts rounded to a few
  hundred values): the live score is the exact W1 between point masses, as SciPy's. Difference ≤ 1e-15,
  so the tolerance is float noise, 1e-9.
* Wasserstein on a continuous column: the live score assumes values uniform within each of the 1,024
  reference-quantile bins. Typically off by < 0.0003, but a heavy tail makes the outermost reference bin
  wide (``data_usage_gb``: one bin spanning ~20 reference std) and then the error is the share of the
  window in that bin times its width. Worst measured: 0.0066 undrifted, 0.021 with ``covariate_drift=0.3``
  (more of the window in the tail). Relative error is no use here (25 % on a score of 0.025), so the
  tolerances are absolute: 0.01 undrifted, 0.03 drifted. Near the 0.1 threshold this can flip a verdict
  (2 of the 40 drifted pairs, both ``data_usage_gb``); the seeds below are not among them.
* Jensen-Shannon: identical (float noise) including when the window holds a value the reference lacks:
  both keep that empty reference bin at zero (Evidently: ``get_binned_data(..., feel_zeroes=False)``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from workbench.demo.dataset import CATEGORICAL_FEATURES, FEATURES, generate_churn
from workbench.errors import ValidationError
from workbench.monitoring.drift import ColumnKind, DriftResult, ReferenceProfile, WindowHistogram, drift
from workbench.monitoring.evidently_report import EvidentlyDrift, evidently_drift, methods_for

pytestmark = pytest.mark.slow

COLUMNS = list(FEATURES)
CATEGORICAL = list(CATEGORICAL_FEATURES)
REFERENCE_ROWS = 3000
EXACT = 1e-9
CONTINUOUS_TOLERANCE = {"undrifted": 0.01, "drifted": 0.03}


@dataclass(frozen=True)
class Both:
    live: DriftResult
    evidently: EvidentlyDrift


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_churn(REFERENCE_ROWS, seed=1)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_frame(reference, COLUMNS, categorical=CATEGORICAL)


def run_both(
    reference: pd.DataFrame,
    profile: ReferenceProfile,
    current: pd.DataFrame,
    *,
    drift_share: float = 0.5,
    html_path: Path | None = None,
    json_path: Path | None = None,
) -> Both:
    window = WindowHistogram(profile)
    window.add({c: current[c].to_numpy() for c in COLUMNS})
    live = drift(window, drift_share=drift_share)
    theirs = evidently_drift(
        reference,
        current,
        columns=COLUMNS,
        categorical=CATEGORICAL,
        methods=methods_for(profile),
        drift_share=drift_share,
        html_path=html_path,
        json_path=json_path,
    )
    return Both(live, theirs)


def tolerance(profile: ReferenceProfile, current: pd.DataFrame, column: str, case: str) -> float:
    kind = profile.column(column).kind
    if kind is ColumnKind.POINTS:
        return EXACT
    if kind is ColumnKind.CONTINUOUS:
        return CONTINUOUS_TOLERANCE[case]
    return EXACT


def score_gaps(both: Both, profile: ReferenceProfile, current: pd.DataFrame, case: str) -> list[str]:
    gaps = []
    for ours in both.live.columns:
        theirs = both.evidently.column(ours.column)
        assert theirs.method == ours.method, ours.column
        assert theirs.threshold == pytest.approx(ours.threshold), ours.column
        allowed = tolerance(profile, current, ours.column, case)
        if abs(ours.score - theirs.score) > allowed:
            gaps.append(
                f"{ours.column} ({ours.method}): live {ours.score:.5f} vs Evidently {theirs.score:.5f}"
            )
    return gaps


def drifted(both: Both) -> tuple[set[str], set[str]]:
    return (
        {c.column for c in both.live.columns if c.drifted},
        {c.column for c in both.evidently.columns if c.drifted},
    )


def test_undrifted_window_scores_agree_and_nothing_drifts(
    reference: pd.DataFrame, profile: ReferenceProfile
) -> None:
    current = generate_churn(3000, seed=2)
    both = run_both(reference, profile, current)

    assert [c.column for c in both.evidently.columns] == COLUMNS
    assert score_gaps(both, profile, current, "undrifted") == []
    assert drifted(both) == (set(), set())
    assert both.live.share_drifted == both.evidently.share_drifted == 0.0
    assert not both.live.dataset_drifted
    assert not both.evidently.dataset_drifted


@pytest.mark.parametrize(
    ("covariate_drift", "drift_share", "dataset_drifted"),
    [
        (0.3, 0.5, False),  # four columns drift: 20 %, under the default share
        (1.0, 0.3, True),  # eight columns drift: 40 %; a lower share makes the dataset verdict flip too
    ],
)
def test_covariate_drift_same_columns_and_dataset_verdict(
    reference: pd.DataFrame,
    profile: ReferenceProfile,
    covariate_drift: float,
    drift_share: float,
    dataset_drifted: bool,
) -> None:
    current = generate_churn(3000, seed=2, covariate_drift=covariate_drift)
    both = run_both(reference, profile, current, drift_share=drift_share)

    live, theirs = drifted(both)
    assert live == theirs, {
        c.column: (c.score, both.evidently.column(c.column).score) for c in both.live.columns
    }
    assert live, "the drifted window should drift somewhere"
    assert score_gaps(both, profile, current, "drifted") == []
    assert both.live.share_drifted == pytest.approx(both.evidently.share_drifted)
    assert both.live.dataset_drifted is both.evidently.dataset_drifted is dataset_drifted


def test_report_files_are_written(reference: pd.DataFrame, profile: ReferenceProfile, tmp_path: Path) -> None:
    current = generate_churn(1000, seed=3, covariate_drift=0.3)
    html_path, json_path = tmp_path / "report" / "drift.html", tmp_path / "report" / "drift.json"
    both = run_both(reference, profile, current, html_path=html_path, json_path=json_path)

    assert html_path.stat().st_size > 0
    assert "<html" in html_path.read_text(encoding="utf-8")[:2000].lower()
    assert json_path.stat().st_size > 0
    document = json.loads(json_path.read_text(encoding="utf-8"))
    scores = {
        m["config"]["column"]: m["value"]
        for m in document["metrics"]
        if m["config"]["type"] == "evidently:metric_v2:ValueDrift"
    }
    assert scores == pytest.approx({c.column: c.score for c in both.evidently.columns})


@pytest.mark.parametrize("side", ["reference", "current"])
def test_missing_column_is_a_validation_error(reference: pd.DataFrame, side: str) -> None:
    frames = {"reference": reference, "current": generate_churn(100, seed=4)}
    frames[side] = frames[side].drop(columns=["region"])
    with pytest.raises(ValidationError, match=rf"{side} dataset lacks.*region"):
        evidently_drift(
            frames["reference"],
            frames["current"],
            columns=COLUMNS,
            categorical=CATEGORICAL,
            methods={},
        )


def test_a_method_evidently_refuses_is_a_validation_error(reference: pd.DataFrame) -> None:
    current = generate_churn(200, seed=5)
    with pytest.raises(ValidationError, match=r"Evidently refused.*wasserstein"):
        evidently_drift(
            reference,
            current,
            columns=["age", "region"],
            categorical=["region"],
            methods={"age": "wasserstein", "region": "wasserstein"},  # not for a categorical column
        )


def test_importing_the_adapter_does_not_import_evidently() -> None:
    code = "import sys, workbench.monitoring.evidently_report; sys.exit('evidently' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
