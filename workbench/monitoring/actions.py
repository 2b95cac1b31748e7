"""Alert notifications: a log line always, and a webhook POST when the rule names one.

The webhook gets the alert as JSON with a short timeout: a slow receiver delays one tick of the
monitoring loop by at most that, and its failure is recorded on the alert, never raised.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from workbench.specs.monitor import AlertRuleSpec, NotifyAction

log = logging.getLogger("workbench.alerts")
WEBHOOK_TIMEOUT_S = 3.0


def notify(
    action: NotifyAction, *, rule: AlertRuleSpec, endpoint: str, value: float | None, message: str
) -> dict[str, Any]:
    payload = {
        "alert": rule.name,
        "monitor": rule.monitor,
        "endpoint": endpoint,
        "severity": rule.severity.value,
        "series": rule.series,
        "value": value,
        "condition": f"{rule.series} {rule.op} {rule.threshold:g}",
        "message": message,
        "at": time.time(),
    }
    log.warning("ALERT %s [%s] on %s: %s", rule.name, rule.severity.value, endpoint, message)
    if action.webhook is None:
        return {"ok": True, "webhook": None}
    try:
        response = httpx.post(action.webhook, json=payload, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return {"ok": False, "webhook": action.webhook, "error": f"{type(exc).__name__}: {exc}"}
    ok = response.status_code < 400
    result: dict[str, Any] = {"ok": ok, "webhook": action.webhook, "status": response.status_code}
    if not ok:
        result["error"] = f"webhook answered HTTP {response.status_code}"
    return result
