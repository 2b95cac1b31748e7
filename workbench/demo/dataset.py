"""A synthetic customer-churn world whose ground truth we control.

The demo needs data where "model B is better than model A" and "this traffic has drifted" are true by
construction rather than by luck, so every row is drawn from an explicit generative process: inputs come
from realistic, correlated marginals and the label from a known, non-linear P(churn | x). The two drift
knobs act on exactly one side of that factorisation each, which lets tests and the demo tell covariate
drift (P(x) moves) apart from concept drift (P(y | x) moves).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURES",
    "NUMERIC_FEATURES",
    "TARGET",
    "churn_probability",
    "features_matrix",
    "generate_churn",
    "split_frame",
]

NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_tickets_90d",
    "avg_session_minutes",
    "sessions_30d",
    "days_since_last_login",
    "devices",
    "data_usage_gb",
    "late_payments_12m",
    "discount_pct",
    "referrals",
    "satisfaction_score",
    "age",
    "nps",
)

# Insertion order matters: it fixes the column order of FEATURES and therefore the model's input layout.
CATEGORICAL_FEATURES: Final[dict[str, int]] = {
    "contract_type": 3,  # 0 month-to-month, 1 one-year, 2 two-year
    "payment_method": 4,  # 0 electronic check, 1 mailed check, 2 bank transfer, 3 credit card
    "plan_tier": 3,  # 0 basic, 1 standard, 2 premium
    "region": 5,
    "has_partner": 2,
}

FEATURES: Final[tuple[str, ...]] = NUMERIC_FEATURES + tuple(CATEGORICAL_FEATURES)

TARGET: Final[str] = "churned"

# One independent random stream per quantity: a drift knob that changes how one feature is drawn (for
# example a Poisson rate, whose sampler consumes a variable number of uniforms) must not reshuffle every
# feature drawn after it, or "the same customers, shifted" would silently become "different customers".
_STREAMS: Final[tuple[str, ...]] = (
    "age",
    "partner",
    "tenure",
    "contract",
    "plan",
    "charges_base",
    "charges_addons",
    "total_noise",
    "payment",
    "region",
    "session_rate",
    "sessions",
    "session_minutes",
    "last_login",
    "devices",
    "data_usage",
    "ticket_rate",
    "tickets",
    "late_payments",
    "discount_has",
    "discount_amount",
    "referrals",
    "satisfaction",
    "nps",
    "label",
)

# Intercept chosen so the undrifted base churn rate sits around a quarter of customers.
_BASE_INTERCEPT: Final[float] = -2.2
_REGION_EFFECT: Final[tuple[float, ...]] = (0.0, 0.25, -0.15, 0.35, -0.25)

FloatArray = npt.NDArray[np.float64]


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_knob(name: str, value: float) -> None:
    if not isinstance(value, int | float | np.floating) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 means no drift), got {value!r}")


def _rounded(values: npt.ArrayLike, decimals: int) -> FloatArray:
    """Round like a billing system would, keeping float64 (numpy's stubs lose the dtype otherwise)."""
    out: FloatArray = np.asarray(values, dtype=np.float64).round(decimals)
    return out


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def generate_churn(
    n_rows: int,
    *,
    seed: int,
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """Draw ``n_rows`` customers with their churn label.

    ``covariate_drift`` (0 none, 1 strong, larger extrapolates) moves who the customers are: pricier
    plans, fewer and shorter sessions, heavier data use and more month-to-month contracts, while the
    label still follows the undrifted P(churn | x). ``concept_drift`` (0..1) leaves every input column
    bit-for-bit identical for a given seed and changes only P(churn | x), so a frozen model's error grows
    without any input monitor noticing.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    _check_seed(seed)
    _check_knob("covariate_drift", covariate_drift)
    _check_knob("concept_drift", concept_drift)

    n = int(n_rows)
    c = float(covariate_drift)
    children = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}

    age = np.clip(np.round(18.0 + rng["age"].gamma(4.0, 6.5, n)), 18.0, 90.0)
    partner_p = 0.25 + 0.35 * _sigmoid((age - 35.0) / 6.0)
    has_partner = (rng["partner"].random(n) < partner_p).astype(np.int64)
    tenure = np.clip(np.floor(rng["tenure"].gamma(0.9, 26.0, n)), 0.0, 72.0)

    # Long-standing customers have mostly moved to longer contracts; drift pushes everyone towards
    # month-to-month by shrinking the non-month-to-month mass, using the same uniforms.
    p_monthly = 0.75 - 0.5 * np.minimum(tenure / 60.0, 1.0)
    p_monthly = 1.0 - (1.0 - p_monthly) * math.exp(-0.9 * c)
    share_one_year = 0.55 - 0.2 * np.minimum(tenure / 72.0, 1.0)
    u_contract = rng["contract"].random(n)
    contract = np.where(
        u_contract < p_monthly,
        0,
        np.where(u_contract < p_monthly + (1.0 - p_monthly) * share_one_year, 1, 2),
    ).astype(np.int64)

    plan_tier = rng["plan"].choice(3, size=n, p=[0.45, 0.35, 0.20]).astype(np.int64)
    tier_price = np.array([28.0, 58.0, 92.0])[plan_tier]
    monthly = (
        tier_price
        + rng["charges_base"].normal(0.0, 7.0, n)
        + rng["charges_addons"].gamma(1.5, 4.0, n)
        + 15.0 * c
    )
    monthly = _rounded(np.clip(monthly, 15.0, 200.0), 2)
    total = tenure * monthly * (1.0 + rng["total_noise"].normal(0.0, 0.04, n))
    total = _rounded(np.maximum(total, 0.0), 2)

    payment = rng["payment"].choice(4, size=n, p=[0.34, 0.22, 0.22, 0.22]).astype(np.int64)
    region = rng["region"].choice(5, size=n, p=[0.30, 0.25, 0.20, 0.15, 0.10]).astype(np.int64)

    session_rate = rng["session_rate"].gamma(2.0, 7.0, n) * math.exp(-0.7 * c)
    sessions = rng["sessions"].poisson(session_rate).astype(np.float64)
    minutes = np.exp(rng["session_minutes"].normal(math.log(16.0), 0.55, n)) * math.exp(-0.35 * c)
    minutes = _rounded(np.clip(minutes, 0.5, 240.0), 1)
    last_login = np.floor(rng["last_login"].exponential(45.0 / (sessions + 1.5)))
    last_login = np.clip(last_login, 0.0, 365.0)
    devices = np.minimum(1.0 + rng["devices"].poisson(1.0, n), 8.0)
    usage = np.exp(rng["data_usage"].normal(np.log(4.0 + 8.0 * plan_tier), 0.6)) * (0.4 + sessions / 20.0)
    usage = _rounded(usage * math.exp(0.8 * c), 2)

    ticket_rate = rng["ticket_rate"].gamma(0.7, 1.0, n) * (1.0 + 0.6 * (tenure < 6))
    tickets = rng["tickets"].poisson(ticket_rate).astype(np.float64)
    late = np.minimum(rng["late_payments"].poisson(0.25 + 0.45 * (payment == 0)), 12).astype(np.float64)

    has_discount = rng["discount_has"].random(n) < 0.2 + 0.25 * (contract > 0)
    discount_amount = 5.0 * np.ceil(rng["discount_amount"].beta(2.0, 5.0, n) * 10.0)
    discount = np.clip(np.where(has_discount, discount_amount, 0.0), 0.0, 50.0)
    referrals = np.minimum(rng["referrals"].poisson(0.35 + 0.35 * has_partner), 10).astype(np.float64)

    satisfaction = 7.3 - 0.7 * tickets - 0.4 * late + rng["satisfaction"].normal(0.0, 1.5, n)
    satisfaction = np.clip(np.round(satisfaction), 1.0, 10.0)
    nps = np.clip(np.round(satisfaction - 1.0 + rng["nps"].normal(0.0, 1.7, n)), 0.0, 10.0)

    numeric: dict[str, FloatArray] = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "support_tickets_90d": tickets,
        "avg_session_minutes": minutes,
        "sessions_30d": sessions,
        "days_since_last_login": last_login,
        "devices": devices,
        "data_usage_gb": usage,
        "late_payments_12m": late,
        "discount_pct": discount,
        "referrals": referrals,
        "satisfaction_score": satisfaction,
        "age": age,
        "nps": nps,
    }
    categorical = {
        "contract_type": contract,
        "payment_method": payment,
        "plan_tier": plan_tier,
        "region": region,
        "has_partner": has_partner,
    }
    frame = pd.DataFrame(
        {name: numeric[name].astype(np.float64) for name in NUMERIC_FEATURES}
        | {name: categorical[name].astype(np.int64) for name in CATEGORICAL_FEATURES}
    )
    probability = churn_probability(frame, concept_drift=concept_drift)
    # The label uniforms are drawn independently of every drift knob, so two frames from the same seed
    # disagree on a label only where their P(churn | x) actually differ.
    frame[TARGET] = (rng["label"].random(n) < probability).astype(np.int64)
    return frame


def churn_probability(frame: pd.DataFrame, *, concept_drift: float = 0.0) -> FloatArray:
    """The true P(churn | x) that ``generate_churn`` samples labels from.

    Exposed so the demo and tests can compare models against the Bayes-optimal scorer and check that
    covariate drift leaves this function untouched.
    """
    _check_knob("concept_drift", concept_drift)
    _require_columns(frame, FEATURES)
    col = {name: frame[name].to_numpy(dtype=np.float64) for name in FEATURES}
    tenure = col["tenure_months"]
    monthly_contract = (col["contract_type"] == 0).astype(np.float64)
    one_year = (col["contract_type"] == 1).astype(np.float64)
    two_year = (col["contract_type"] == 2).astype(np.float64)
    basic = (col["plan_tier"] == 0).astype(np.float64)
    premium = (col["plan_tier"] == 2).astype(np.float64)
    e_check = (col["payment_method"] == 0).astype(np.float64)
    sessions = col["sessions_30d"]
    satisfaction = col["satisfaction_score"]
    region_effect = np.array(_REGION_EFFECT)[col["region"].astype(np.int64)]

    # Fresh month-to-month customers are the classic churners; the effect fades over the first year.
    new_monthly = monthly_contract * np.exp(-tenure / 8.0)
    # Price pain is felt mostly on the basic tier, and only above what the tier usually costs.
    price_pain = np.maximum(col["monthly_charges"] - np.where(basic > 0, 32.0, 70.0), 0.0)
    # Disengagement is a threshold effect (a customer who has not logged in for weeks is gone), made
    # sharper when they were also light users: hard for a small model to carve out exactly.
    absent = _sigmoid((col["days_since_last_login"] - 14.0) * 0.8)
    light_user = (sessions < 4).astype(np.float64)
    logit = (
        _BASE_INTERCEPT
        + 2.2 * new_monthly
        + 0.6 * monthly_contract
        - 1.0 * two_year
        + 0.045 * price_pain * (0.5 + basic)
        + 1.1 * np.tanh(col["support_tickets_90d"] / 2.0)
        - 0.35 * (satisfaction - 6.0)
        + 1.4 * absent * (1.0 + light_user)
        - 0.4 * np.tanh(sessions / 10.0)
        + 0.9 * np.tanh(col["late_payments_12m"] / 2.0) * (0.4 + e_check)
        - 0.04 * col["discount_pct"] * monthly_contract
        - 0.35 * col["has_partner"]
        - 0.3 * np.tanh(col["referrals"])
        + 0.0006 * (col["age"] - 45.0) ** 2
        + region_effect
        - 1.5 * basic * monthly_contract * (satisfaction >= 8)
        # One-year customers leave around their renewal date, a periodic pattern in tenure.
        + 2.2 * one_year * (np.mod(tenure, 12.0) >= 10.0) * (tenure >= 10.0)
        # Regional competition hits specific tiers: a tier x region interaction with no main effect.
        + 2.0 * premium * (col["region"] == 3)
        - 1.6 * basic * (col["region"] == 1)
        + 1.5 * (col["plan_tier"] == 1) * (col["region"] == 4)
    )
    if concept_drift > 0:
        # A competitor launches a cheaper premium product and support quality stops mattering as much:
        # premium customers start leaving, satisfaction and tickets lose predictive power, and the
        # old month-to-month pattern weakens. Only the label mechanism changes, never the inputs.
        delta = (
            1.3 * premium
            - 1.6 * new_monthly
            + 0.25 * (satisfaction - 6.0)
            - 0.8 * np.tanh(col["support_tickets_90d"] / 2.0)
            + 0.6
        )
        logit = logit + float(concept_drift) * delta
    return _sigmoid(logit)


def split_frame(df: pd.DataFrame, *, holdout_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Randomly split rows into (train, holdout), reproducibly for a seed.

    Each part keeps the original row order and gets a fresh 0..n-1 index, so downstream positional
    code (tensors, numpy) and label-based code agree.
    """
    if not isinstance(holdout_fraction, int | float) or not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be strictly between 0 and 1, got {holdout_fraction!r}")
    _check_seed(seed)
    n = len(df)
    n_holdout = round(n * holdout_fraction)
    if n_holdout < 1 or n_holdout > n - 1:
        raise ValueError(
            f"cannot split {n} rows with holdout_fraction={holdout_fraction}: "
            "both train and holdout need at least one row"
        )
    order = np.random.default_rng(int(seed)).permutation(n)
    holdout_positions = np.sort(order[:n_holdout])
    train_positions = np.sort(order[n_holdout:])
    train = df.iloc[train_positions].reset_index(drop=True)
    holdout = df.iloc[holdout_positions].reset_index(drop=True)
    return train, holdout


def features_matrix(df: pd.DataFrame) -> npt.NDArray[np.float32]:
    """The raw model input: FEATURES in their fixed order as float32, exactly what ChurnNet expects."""
    _require_columns(df, FEATURES)
    matrix: npt.NDArray[np.float32] = df.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    return matrix


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(f"frame is missing required column(s): {', '.join(missing)}")
