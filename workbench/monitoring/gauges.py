"""What monitors compute, as Prometheus gauges on the control plane's ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class MonitoringGauges:
    """Drift, performance and alert state as Prometheus gauges on the control plane's ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.value = Gauge(
            "workbench_monitor_value",
            "Latest value of a monitor's series over its window",
            ["monitor", "endpoint", "series"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "workbench_drift_score",
            "Drift score of a feature (or the prediction) over the monitor's window",
            ["monitor", "endpoint", "column", "method"],
            registry=self.registry,
        )
        self.firing = Gauge(
            "workbench_alert_firing",
            "1 while an alert rule fires",
            ["rule", "monitor", "severity"],
            registry=self.registry,
        )
