"""The synthetic churn world must be reproducible and its drift knobs must mean what they say.

Drift monitors and model comparisons in the demo are only convincing if covariate drift really leaves
P(churn | x) alone and concept drift really leaves the inputs alone, so both are checked statistically
against the known ground-truth probability.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.demo.dataset import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    churn_probability,
    features_matrix,
    generate_churn,
    split_frame,
)

N_ROWS = 20_000
DRIFTED_FEATURES = ("monthly_charges", "sessions_30d", "avg_session_minutes", "data_usage_gb")
UNDRIFTED_FEATURES = ("tenure_months", "age", "support_tickets_90d", "satisfaction_score", "region")


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return generate_churn(N_ROWS, seed=11)


@pytest.fixture(scope="module")
def covariate_drifted() -> pd.DataFrame:
    return generate_churn(N_ROWS, seed=11, covariate_drift=1.0)


@pytest.fixture(scope="module")
def concept_drifted() -> pd.DataFrame:
    return generate_churn(N_ROWS, seed=11, concept_drift=1.0)


def _calibration_z(frame: pd.DataFrame, probability: np.ndarray) -> float:
    """How many standard errors the observed churn count is from what ``probability`` predicts."""
    labels = frame[TARGET].to_numpy()
    expected = probability.sum()
    variance = (probability * (1 - probability)).sum()
    return float((labels.sum() - expected) / math.sqrt(variance))


def _worst_decile_z(frame: pd.DataFrame, probability: np.ndarray) -> float:
    """Largest calibration z-score over deciles of ``probability``: catches a changed P(y|x) shape."""
    labels = frame[TARGET].to_numpy()
    edges = np.quantile(probability, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, 9)
    worst = 0.0
    for b in range(10):
        in_bin = bins == b
        p = probability[in_bin]
        z = (labels[in_bin].sum() - p.sum()) / math.sqrt((p * (1 - p)).sum())
        worst = max(worst, abs(float(z)))
    return worst


def test_feature_constants_are_consistent() -> None:
    assert len(NUMERIC_FEATURES) == 15
    assert len(CATEGORICAL_FEATURES) == 5
    assert list(FEATURES) == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert len(set(FEATURES)) == 20
    assert TARGET not in FEATURES


def test_same_seed_gives_identical_frames() -> None:
    pd.testing.assert_frame_equal(generate_churn(2_000, seed=5), generate_churn(2_000, seed=5))


def test_different_seeds_give_different_frames() -> None:
    first = generate_churn(2_000, seed=5)
    second = generate_churn(2_000, seed=6)
    for column in ("monthly_charges", "tenure_months", "age", "contract_type"):
        assert not first[column].equals(second[column]), column


def test_schema_and_dtypes(base: pd.DataFrame) -> None:
    assert list(base.columns) == [*FEATURES, TARGET]
    assert len(base) == N_ROWS
    for name in NUMERIC_FEATURES:
        assert base[name].dtype == np.float64, name
    for name in (*CATEGORICAL_FEATURES, TARGET):
        assert base[name].dtype == np.int64, name
    assert not base.isna().any().any()
    assert set(base[TARGET].unique()) == {0, 1}


def test_categorical_codes_cover_their_cardinality(base: pd.DataFrame) -> None:
    for name, cardinality in CATEGORICAL_FEATURES.items():
        assert set(base[name].unique()) == set(range(cardinality)), name


def test_numeric_ranges_are_realistic(base: pd.DataFrame) -> None:
    assert base["tenure_months"].between(0, 72).all()
    assert base["discount_pct"].between(0, 50).all()
    assert base["satisfaction_score"].between(1, 10).all()
    assert (base["satisfaction_score"] == base["satisfaction_score"].round()).all()
    assert base["nps"].between(0, 10).all()
    assert base["age"].between(18, 90).all()
    assert (base["monthly_charges"] > 0).all()
    assert (base["devices"] >= 1).all()
    count_columns = ("support_tickets_90d", "sessions_30d", "late_payments_12m", "referrals")
    for name in (*count_columns, "total_charges", "data_usage_gb", "days_since_last_login"):
        assert (base[name] >= 0).all(), name
    # Skewed, not symmetric: the long tail of heavy users pulls the mean above the median.
    assert base["data_usage_gb"].mean() > base["data_usage_gb"].median()


def test_total_charges_track_tenure_times_monthly(base: pd.DataFrame) -> None:
    implied = base["tenure_months"] * base["monthly_charges"]
    assert np.corrcoef(implied, base["total_charges"])[0, 1] > 0.98


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_base_churn_rate_is_plausible(seed: int) -> None:
    rate = generate_churn(10_000, seed=seed)[TARGET].mean()
    assert 0.2 <= rate <= 0.32


def test_label_has_the_month_to_month_new_customer_interaction(base: pd.DataFrame) -> None:
    new_monthly = base[(base["contract_type"] == 0) & (base["tenure_months"] < 6)]
    old_monthly = base[(base["contract_type"] == 0) & (base["tenure_months"] >= 24)]
    two_year = base[base["contract_type"] == 2]
    assert new_monthly[TARGET].mean() > 1.5 * old_monthly[TARGET].mean()
    assert new_monthly[TARGET].mean() > 3 * two_year[TARGET].mean()


def test_labels_follow_the_ground_truth_probability(base: pd.DataFrame) -> None:
    probability = churn_probability(base)
    assert ((probability > 0) & (probability < 1)).all()
    assert abs(_calibration_z(base, probability)) < 4
    assert _worst_decile_z(base, probability) < 4


def test_covariate_drift_moves_the_drifted_inputs(
    base: pd.DataFrame, covariate_drifted: pd.DataFrame
) -> None:
    assert covariate_drifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 10
    assert covariate_drifted["sessions_30d"].mean() < 0.7 * base["sessions_30d"].mean()
    assert covariate_drifted["avg_session_minutes"].mean() < 0.8 * base["avg_session_minutes"].mean()
    assert covariate_drifted["data_usage_gb"].mean() > 1.2 * base["data_usage_gb"].mean()
    monthly_share = (covariate_drifted["contract_type"] == 0).mean()
    assert monthly_share > (base["contract_type"] == 0).mean() + 0.1
    for name in UNDRIFTED_FEATURES:
        pd.testing.assert_series_equal(covariate_drifted[name], base[name])


def test_covariate_drift_scales_with_the_knob(base: pd.DataFrame, covariate_drifted: pd.DataFrame) -> None:
    mild = generate_churn(N_ROWS, seed=11, covariate_drift=0.3)
    for name in DRIFTED_FEATURES:
        base_mean, mild_mean, strong_mean = (f[name].mean() for f in (base, mild, covariate_drifted))
        assert abs(base_mean - mild_mean) < abs(base_mean - strong_mean), name


def test_covariate_drift_leaves_p_y_given_x_unchanged(covariate_drifted: pd.DataFrame) -> None:
    # The undrifted label function still explains drifted labels, overall and across its whole range,
    # even though the drifted population churns far more often.
    probability = churn_probability(covariate_drifted)
    assert abs(_calibration_z(covariate_drifted, probability)) < 4
    assert _worst_decile_z(covariate_drifted, probability) < 4


def test_concept_drift_leaves_inputs_bit_identical(base: pd.DataFrame, concept_drifted: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(concept_drifted[list(FEATURES)], base[list(FEATURES)])


def test_concept_drift_changes_p_y_given_x(base: pd.DataFrame, concept_drifted: pd.DataFrame) -> None:
    old_probability = churn_probability(concept_drifted)
    # The old label function no longer explains the labels (the same check passes under covariate drift).
    assert abs(_calibration_z(concept_drifted, old_probability)) > 8
    assert _worst_decile_z(concept_drifted, old_probability) > 8
    # ...but the drifted one does, so the change is in P(y|x) and nothing else.
    new_probability = churn_probability(concept_drifted, concept_drift=1.0)
    assert _worst_decile_z(concept_drifted, new_probability) < 4
    # The relationship itself moves: premium customers become the churners.
    premium = base["plan_tier"] == 2
    assert concept_drifted.loc[premium, TARGET].mean() > base.loc[premium, TARGET].mean() + 0.15
    assert concept_drifted[TARGET].mean() > base[TARGET].mean() + 0.02


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": -5}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"seed": -1}, "seed"),
        ({"covariate_drift": -0.1}, "covariate_drift"),
        ({"covariate_drift": float("nan")}, "covariate_drift"),
        ({"concept_drift": -1.0}, "concept_drift"),
        ({"concept_drift": float("inf")}, "concept_drift"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float], message: str) -> None:
    arguments: dict[str, float] = {"n_rows": 10, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_churn(**arguments)  # type: ignore[arg-type]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    frame = generate_churn(1_000, seed=3).assign(row_id=np.arange(1_000))
    train, holdout = split_frame(frame, holdout_fraction=0.2, seed=9)
    again_train, again_holdout = split_frame(frame, holdout_fraction=0.2, seed=9)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(holdout, again_holdout)
    assert len(holdout) == 200
    assert len(train) == 800
    assert set(train["row_id"]).isdisjoint(holdout["row_id"])
    assert set(train["row_id"]) | set(holdout["row_id"]) == set(range(1_000))
    assert list(train.index) == list(range(800))
    other_train, _ = split_frame(frame, holdout_fraction=0.2, seed=10)
    assert set(other_train["row_id"]) != set(train["row_id"])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_split_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(ValueError, match="holdout_fraction"):
        split_frame(generate_churn(100, seed=0), holdout_fraction=fraction, seed=0)


def test_split_rejects_a_frame_too_small_to_split() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        split_frame(generate_churn(1, seed=0), holdout_fraction=0.5, seed=0)


def test_features_matrix_is_float32_in_feature_order(base: pd.DataFrame) -> None:
    shuffled = base[list(reversed(base.columns))]
    matrix = features_matrix(shuffled)
    assert matrix.dtype == np.float32
    assert matrix.shape == (N_ROWS, 20)
    np.testing.assert_array_equal(matrix[:, 0], base["tenure_months"].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(matrix[:, -1], base["has_partner"].to_numpy(dtype=np.float32))


def test_features_matrix_names_missing_columns(base: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"age.*region|region.*age"):
        features_matrix(base.drop(columns=["age", "region"]))
