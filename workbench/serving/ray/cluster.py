"""Finding the Ray cluster: the address the settings give, or a local one started (once) for this home.

A local cluster is started with ``ray start --head --block`` in its own session, so it outlives a
control plane killed with SIGKILL (the applications on it keep serving, and the next control plane finds
it through ``run/ray.json``); a graceful stop of the control plane stops it. An address that does not
answer is refused before Ray is asked to connect: ``ray.init`` on a dead address retries for a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UnavailableError
from workbench.settings import Settings

log = logging.getLogger("workbench.ray")
START_TIMEOUT_S = 90.0
#: What a driver of a local cluster needs: no token authentication (it listens on 127.0.0.1 only), no
#: usage reports.
DRIVER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
#: What the cluster's own processes get besides: replicas that cannot be scheduled reported after 5 s
#: instead of 30, and Ray Serve's throughput mode. Never in the control plane's process: that mode makes
#: handles usable only from inside an event loop.
LOCAL_ENV = {
    **DRIVER_ENV,
    "SERVE_SLOW_STARTUP_WARNING_S": "5",
    # ... and checked every 5 s, not every 30 (the first report came 30 s after the deploy regardless).
    "SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "5",
    # Ray Serve's throughput mode (Ray >= 2.56): user code on the replica's own event loop, gRPC between
    # deployments, buffered request logs (docs/benchmarks.md, the Ray backend, measures both modes).
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"),
    # That mode lets every application's ingress deployment drain for at least 30 s when stopped, ours
    # included (a version's application is reached by handle only, never by HTTP): each withdrawal and
    # each stop took 30 s for nothing. The router's requests in flight drain in well under 2 s.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}


@dataclass(frozen=True)
class Cluster:
    address: str
    #: The ``ray start --block`` process of a cluster started here (None: somebody else's cluster).
    pid: int | None = None
    temp_dir: str | None = None

    @property
    def local(self) -> bool:
        return self.pid is not None


#: ``ray start`` processes started by this process, kept so they are waited for, not leaked.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def answers(address: str, timeout: float = 3.0) -> str | None:
    """None when ``host:port`` accepts a connection, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not host:port"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc) or type(exc).__name__


def find_cluster(settings: Settings) -> Cluster:
    """The cluster the settings name, or this home's local one, started if it is not running."""
    address = settings.ray_address
    if address:
        if address != "auto":
            address = address.removeprefix("ray://") if address.startswith("ray://") else address
            problem = answers(address)
            if problem is not None:
                raise UnavailableError(
                    f"the Ray cluster at {settings.ray_address} does not answer ({problem}): set "
                    "WORKBENCH_RAY_ADDRESS to a running cluster's GCS address (host:port), or leave it empty "
                    "to start a local one",
                    ray_address=settings.ray_address,
                )
        return Cluster(address=address)
    state = settings.home / "run" / "ray.json"
    if state.is_file():
        try:
            recorded = Cluster(**json.loads(state.read_text()))
        except (OSError, ValueError, TypeError):
            recorded = None
        if (
            recorded is not None
            and recorded.pid is not None
            and _alive(recorded.pid)
            and answers(recorded.address) is None
        ):
            return recorded
    return _start_local(settings, state)


def _start_local(settings: Settings, state: Path) -> Cluster:
    port = free_port()
    # Ray's Unix sockets live under the temp dir and must stay under 108 bytes: a short path per home.
    digest = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:10]
    temp_dir = f"/tmp/wb-ray-{digest}"
    log_path = settings.home / "logs" / "ray.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={max(1, int(settings.ray_num_cpus or os.cpu_count() or 1))}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **LOCAL_ENV},
        )
    _STARTED[process.pid] = process
    cluster = Cluster(address=f"127.0.0.1:{port}", pid=process.pid, temp_dir=temp_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while answers(cluster.address, timeout=0.5) is not None:
        if process.poll() is not None:
            raise UnavailableError(
                f"the local Ray cluster did not start (exit {process.returncode}); see {log_path}"
            )
        if time.monotonic() > deadline:
            stop_local(cluster)
            raise UnavailableError(
                f"the local Ray cluster did not answer in {START_TIMEOUT_S:.0f} s; see {log_path}"
            )
        time.sleep(0.2)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"address": cluster.address, "pid": cluster.pid, "temp_dir": temp_dir}))
    log.info("started a local Ray cluster at %s (pid %d)", cluster.address, process.pid)
    return cluster


def stop_local(cluster: Cluster, timeout: float = 8.0) -> None:
    """Stop a cluster started here: its whole process group, which ``ray start --block`` leads.

    Its applications are withdrawn before (the backend's ``close``), so nothing of value is left to
    finish: measured, some of Ray's processes outlived SIGTERM for the whole 20 s once allowed, and
    SIGKILL after ``timeout`` loses nothing."""
    if cluster.pid is None:
        return
    try:
        os.killpg(cluster.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(cluster.pid)
        if not _running_in_group(cluster.pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(cluster.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def stop_recorded_cluster(home: Path) -> None:
    """Stop the local cluster a control plane of ``home`` started and left running (it was killed)."""
    state = home / "run" / "ray.json"
    try:
        recorded = Cluster(**json.loads(state.read_text()))
    except (OSError, ValueError, TypeError):
        return
    stop_local(recorded)
    state.unlink(missing_ok=True)


def _running_in_group(pgid: int) -> bool:
    """Whether any process of the group still runs; zombies do not count (they are gone, only unreaped,
    and a container's init may never reap them)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp.
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _reap(pid: int) -> None:
    process = _STARTED.get(pid)
    if process is not None:
        if process.poll() is not None:
            del _STARTED[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect(cluster: Cluster) -> None:
    """Make this process a Ray driver of ``cluster`` (once)."""
    if cluster.local:
        for name, value in DRIVER_ENV.items():
            os.environ.setdefault(name, value)
    import ray

    if ray.is_initialized():
        return
    ray.init(
        address=cluster.address,
        namespace="workbench",
        log_to_driver=False,
        logging_level=logging.WARNING,
        include_dashboard=False,
    )
