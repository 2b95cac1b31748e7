"""Live drift from binned counts: against exact computations on the raw samples, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from workbench.demo.dataset import CATEGORICAL_FEATURES, FEATURES, generate_churn
from workbench.errors import ValidationError
from workbench.monitoring.drift import (
    ColumnKind,
    ReferenceProfile,
    WindowHistogram,
    drift,
    profile_column,
)


def _window(profile: ReferenceProfile, frame: object, columns: tuple[str, ...]) -> WindowHistogram:
    window = WindowHistogram(profile)
    window.add({c: frame[c].to_numpy() for c in columns})  # type: ignore[index]
    return window


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_wasserstein_matches_scipy_on_the_raw_samples(shift: float) -> None:
    reference = generate_churn(5000, seed=1)
    current = generate_churn(20_000, seed=2, covariate_drift=shift)
    numeric = tuple(c for c in FEATURES if c not in CATEGORICAL_FEATURES)
    profile = ReferenceProfile.from_frame(reference, numeric)
    result = drift(_window(profile, current, numeric))
    for column in result.columns:
        exact = stats.wasserstein_distance(reference[column.column], current[column.column]) / max(
            float(np.std(reference[column.column])), 0.001
        )
        kind = profile.column(column.column).kind
        if kind is ColumnKind.POINTS:  # point masses: exact up to rounding
            assert column.score == pytest.approx(exact, rel=1e-9, abs=1e-12), column.column
        elif kind is ColumnKind.CONTINUOUS:  # 1,024 quantile bins: within 2% (or 0.002)
            assert column.score == pytest.approx(exact, rel=0.02, abs=0.002), column.column


def test_values_outside_the_reference_range_count_exactly() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 5000)
    current = rng.normal(3, 1, 5000)  # mostly beyond the reference maximum
    profile = ReferenceProfile((profile_column("x", reference),))
    window = WindowHistogram(profile)
    window.add({"x": current})
    exact = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert drift(window).columns[0].score == pytest.approx(exact, rel=0.01)


def test_jensen_shannon_matches_scipy_keeping_empty_bins_as_evidently_does() -> None:
    reference = np.array([0] * 500 + [1] * 300 + [2] * 200, dtype=float)
    current = np.array([0] * 100 + [1] * 100 + [2] * 700 + [3] * 100, dtype=float)  # a new category
    profile = ReferenceProfile((profile_column("plan", reference, categorical=True),))
    window = WindowHistogram(profile)
    window.add({"plan": current})
    ref = np.array([0.5, 0.3, 0.2, 0.0])
    cur = np.array([0.1, 0.1, 0.7, 0.1])
    (column,) = drift(window).columns
    assert column.method == "jensenshannon"
    assert column.score == pytest.approx(distance.jensenshannon(ref, cur), rel=1e-9)
    assert column.drifted


def test_slices_merge_to_the_whole_window() -> None:
    reference = generate_churn(3000, seed=4)
    current = generate_churn(4000, seed=5, covariate_drift=0.5)
    profile = ReferenceProfile.from_frame(reference, FEATURES, categorical=CATEGORICAL_FEATURES)
    whole = _window(profile, current, FEATURES)
    parts = [_window(profile, current.iloc[i : i + 1000], FEATURES) for i in range(0, 4000, 1000)]
    merged = WindowHistogram.combined(profile, parts)
    assert merged.rows == whole.rows == 4000
    for a, b in zip(drift(whole).columns, drift(merged).columns, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12)


def test_undrifted_windows_stay_clean_and_drifted_ones_are_flagged() -> None:
    reference = generate_churn(6000, seed=6)
    profile = ReferenceProfile.from_frame(reference, FEATURES, categorical=CATEGORICAL_FEATURES)
    clean = [drift(_window(profile, generate_churn(5000, seed=100 + s), FEATURES)) for s in range(10)]
    assert max(r.share_drifted for r in clean) == 0.0
    shifted = drift(_window(profile, generate_churn(5000, seed=7, covariate_drift=1.0), FEATURES))
    assert shifted.share_drifted >= 0.3
    assert {"monthly_charges", "sessions_30d"} <= {c.column for c in shifted.columns if c.drifted}


def test_psi_and_per_column_overrides() -> None:
    reference = generate_churn(3000, seed=8)
    current = generate_churn(3000, seed=9, covariate_drift=1.0)
    profile = ReferenceProfile.from_frame(reference, ("monthly_charges", "age"))
    result = drift(
        _window(profile, current, ("monthly_charges", "age")),
        methods={"monthly_charges": "psi"},
        thresholds={"age": 5.0},
    )
    charges, age = result.column("monthly_charges"), result.column("age")
    assert (charges.method, charges.threshold) == ("psi", 0.1)
    assert charges.score > 0.1
    assert (age.method, age.threshold, age.drifted) == ("wasserstein", 5.0, False)


def test_profiles_round_trip_and_bad_input_is_refused() -> None:
    reference = generate_churn(2000, seed=10)
    profile = ReferenceProfile.from_frame(reference, FEATURES)
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile
    with pytest.raises(ValidationError, match="lacks column"):
        ReferenceProfile.from_frame(reference, ("nope",))
    with pytest.raises(ValidationError, match="no finite value"):
        profile_column("x", [np.nan, np.inf])
    window = WindowHistogram(profile)
    window.add({"contract_type": [0, 1, 2]})
    with pytest.raises(ValidationError, match="wasserstein needs a numeric column"):
        drift(window, methods={"contract_type": "wasserstein"})
    assert [c.column for c in drift(window).columns] == ["contract_type"]  # only columns with data
