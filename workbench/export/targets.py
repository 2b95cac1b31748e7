"""The Prometheus file-based service-discovery file, kept by the control plane under its home.

Rewritten at every start (the ports are known only then: ``0`` picks a free one) with the two scrape
targets: the control plane (monitors, drift, alerts) and the router (its own series and every replica's,
labelled). Prometheus re-reads the file on change, so a restart on other ports needs no new config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workbench.paths import write_atomic
from workbench.protocol import API_PREFIX

FILE_NAME = "prometheus-targets.json"


def targets_file(home: Path) -> Path:
    return home / "run" / FILE_NAME


def _address(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"not an http://host:port URL: {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def targets(api_url: str, router_url: str | None, backend: str) -> list[dict[str, Any]]:
    # The control plane serves its series under the API's prefix; Prometheus takes a per-target path
    # from the reserved ``__metrics_path__`` label.
    found = [
        {
            "targets": [_address(api_url)],
            "labels": {"component": "control-plane", "__metrics_path__": f"{API_PREFIX}/metrics"},
        }
    ]
    if router_url:
        found.append(
            {"targets": [_address(router_url)], "labels": {"component": "router", "backend": backend}}
        )
    return found


def write_targets(home: Path, entries: list[dict[str, Any]]) -> Path:
    """Atomically (Prometheus may read it at any moment)."""
    path = targets_file(home)
    write_atomic(path, json.dumps(entries, indent=2) + "\n")
    return path
