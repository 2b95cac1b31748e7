"""The per-second fold behind live charts: sealed seconds only, zeros for quiet seconds, totals at once."""

from __future__ import annotations

from workbench.monitoring.live import LiveTraffic


def _record(ts: float, version: int = 1, latency: float = 2.0, status: int = 200, **extra: object) -> dict:
    return {"ts": ts, "version": version, "latency_ms": latency, "status": status, **extra}


def test_a_second_is_served_only_once_sealed_and_totals_count_at_once() -> None:
    live = LiveTraffic(grace_s=1.0)
    live.add([_record(100.2), _record(100.7, latency=4.0)], now=100.8)
    answer = live.since(None, now=100.8)
    assert answer["totals"]["all"] == {"requests": 2, "errors": 0}
    assert 100 not in answer["points"].get("all", {}).get("ts", [])  # still open: it may gain records
    answer = live.since(None, now=102.1)
    column = answer["points"]["all"]
    index = column["ts"].index(100)
    assert column["requests"][index] == 2
    assert column["p50_ms"][index] == 3.0
    assert answer["next"] == answer["through"] + 1 == 101


def test_quiet_seconds_are_zero_and_errors_are_rated() -> None:
    live = LiveTraffic(grace_s=0.5)
    live.add([_record(10.1, status=500), _record(10.2)], now=10.3)
    live.add([], now=14.0)
    column = live.since(10, now=14.0)["points"]["all"]
    assert column["ts"] == [10, 11, 12]
    assert column["requests"] == [2, 0, 0]
    assert column["error_rate"][0] == 0.5
    assert column["p95_ms"][1] is None
    version = live.since(10, now=14.0)["points"]["1"]
    assert version["requests"] == [2, 0, 0]  # a version that went quiet draws zeros, not a gap


def test_late_records_and_shadow_traffic_do_not_change_sealed_seconds() -> None:
    live = LiveTraffic(grace_s=0.5)
    live.add([_record(5.5)], now=7.0)
    live.add([_record(5.9), _record(6.9, shadow=True)], now=7.2)
    column = live.since(None, now=7.2)["points"]["all"]
    assert column["requests"][column["ts"].index(5)] == 1
    assert live.late == 1
    assert live.since(None, now=7.2)["totals"]["all"]["requests"] == 2


def test_since_returns_only_new_points_and_old_ones_age_out() -> None:
    live = LiveTraffic(horizon_s=5, grace_s=0.0)
    live.add([_record(float(t)) for t in range(100, 110)], now=110.5)
    first = live.since(None, now=110.5)
    assert first["points"]["all"]["ts"][0] >= 105
    again = live.since(first["next"], now=112.5)
    assert again["points"]["all"]["ts"] == [110, 111]


def test_the_typical_batch_is_the_request_weighted_mean_of_sealed_seconds_per_version() -> None:
    """What ``workbench optimize`` times a variant at when the endpoint serving its parent has traffic."""
    live = LiveTraffic(grace_s=1.0)
    assert live.typical_batch(now=100.0) is None  # no traffic: the caller falls back to one-row requests
    records = [_record(100.1, batch_size=8) for _ in range(3)] + [_record(101.5, batch_size=2)]
    records += [
        _record(100.3, version=2, batch_size=32),
        _record(103.9, batch_size=64),
    ]  # 103: not sealed yet
    live.add(records, now=104.0)  # nothing reads the live points: typical_batch seals the seconds itself
    assert live.typical_batch("1", now=104.0) == (3 * 8 + 2) / 4
    assert live.typical_batch("2", now=104.0) == 32
    assert live.typical_batch(now=104.0) == (3 * 8 + 2 + 32) / 5
