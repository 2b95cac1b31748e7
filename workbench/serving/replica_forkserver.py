"""``python -m workbench.serving.replica_forkserver RUN_DIR``: replicas forked from a process that has
already imported what every replica imports.

Why: a replica's start was ~1.5 s of CPU, ~1.3 s of it importing torch, pandas, uvicorn and the serving
code before loading a model of a few hundred KB. Every deploy, canary step, scale-up and crash restart
paid it. Forked from here, a replica only loads its model and warms up (~0.2 s), and the imported pages
stay shared copy-on-write between replicas.

Fork safety, the conditions PyTorch's own forking ``DataLoader`` workers rely on:
- this process runs no torch operation (the intra-op thread pool starts on first use) and never touches
  CUDA (a CUDA context does not survive a fork; the replica selects its device after the fork);
- the only threads here are those imports start (OpenBLAS's pool, which re-creates itself in a child);
- each request is served by one ``fork`` from the single thread that reads the socket.

Protocol: newline-delimited JSON on the socket inherited as the fd named by ``WORKBENCH_FORKSERVER_FD``.
  → ``{"id": 1, "module": "workbench.serving.replica", "argv": [...], "log": path, "env": {...}, "cwd": path}``
  ← ``{"id": 1, "pid": 1234}`` or ``{"id": 1, "error": "..."}``
  ← ``{"exit": 1234, "code": 0}`` whenever a child ends (negative: the signal that ended it), as Popen says
``RUN_DIR`` is not read: it names, in ``ps`` and in tests' checks for leftover processes, the home whose
replicas this process forks (its children show the same command line).
End of file on the socket (the control plane is gone) ends this process. Its children live on in their
own sessions, as replicas started any other way do, to be adopted by the next control plane.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any

FD_VARIABLE = "WORKBENCH_FORKSERVER_FD"
#: What may be forked: a request naming anything else is refused.
MODULES = frozenset({"workbench.serving.replica"})
#: Imported before the first fork. Missing optional ones (torch on an ONNX-only install) are skipped.
PRELOAD = (
    "numpy",
    "pandas",
    "torch",
    "uvloop",
    "uvicorn",
    "workbench.serving.replica",
    "workbench.serving.device",
    "workbench.serving.model",
    "workbench.serving.replica_app",
    "workbench.telemetry",
)


def preload(names: tuple[str, ...] = PRELOAD) -> list[str]:
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional runtime that is not installed, or broken: the child says
            print(f"replica-forkserver: not preloaded {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            loaded.append(name)
    # What is loaded now lives in every child: out of the collector's sight, so that no collection in a
    # child writes to (and so copies) these shared pages.
    gc.collect()
    gc.freeze()
    return loaded


def main(argv: list[str] | None = None) -> int:
    raw_fd = os.environ.pop(FD_VARIABLE, None)
    if raw_fd is None or not raw_fd.isdigit():
        print(f"replica-forkserver: {FD_VARIABLE} must name the control plane's socket", file=sys.stderr)
        return 2
    channel = socket.socket(fileno=int(raw_fd))
    # Ctrl-C at the control plane's terminal is the control plane's to handle; this process ends when
    # the control plane closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    loaded = preload()
    if _cuda_initialised():
        # No child could use the GPU (a CUDA context does not survive a fork): refuse to serve, and the
        # supervisor starts replicas as fresh interpreters.
        print("replica-forkserver: CUDA was initialised by an import; not forking", file=sys.stderr)
        return 3
    _send(channel, {"ready": loaded})
    inherited = (channel.fileno(), wake_r, wake_w)
    pending = b""
    try:
        while True:
            readable, _, _ = select.select([channel.fileno(), wake_r], [], [])
            if wake_r in readable:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            _reap(channel)
            if channel.fileno() in readable:
                data = channel.recv(65536)
                if not data:
                    return 0
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    _serve(channel, line, inherited)
    except (BrokenPipeError, ConnectionResetError):
        return 0


def _serve(channel: socket.socket, line: bytes, inherited: tuple[int, ...]) -> None:
    request: Any = None
    try:
        request = json.loads(line)
        request_id = request["id"]
        if request.get("module") not in MODULES:
            raise ValueError(f"not a module this server forks: {request.get('module')!r}")
        argv = [str(arg) for arg in request["argv"]]
        log_path, cwd = str(request["log"]), str(request["cwd"])
        env = {str(k): str(v) for k, v in request["env"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _send(channel, {"id": request.get("id") if isinstance(request, dict) else None, "error": str(exc)})
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        _send(channel, {"id": request_id, "error": f"fork failed: {exc}"})
        return
    if pid == 0:
        _run_child(request["module"], argv, log_path, cwd, env, inherited)
    _send(channel, {"id": request_id, "pid": pid})


def _run_child(
    module: str, argv: list[str], log_path: str, cwd: str, env: dict[str, str], inherited: tuple[int, ...]
) -> None:
    """Become the process ``python -m module *argv`` would have been, then run it; never returns."""
    code: int = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in inherited:
            os.close(fd)
        os.setsid()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null_fd)
        os.close(log_fd)
        sys.argv = [module, *argv]
        result = importlib.import_module(module).main(argv)
        code = int(result or 0)
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _reap(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(channel, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall(json.dumps(message).encode() + b"\n")


if __name__ == "__main__":
    sys.exit(main())
