"""The control plane's end of the replica fork server (:mod:`workbench.serving.replica_forkserver`).

Started on the first replica a supervisor launches, not before: a control plane that never serves
pays nothing. Started again on the next launch if it died. A forked replica is described by a
:class:`ForkedChild`, which answers ``poll``/``wait`` as ``subprocess.Popen`` does, so the rest of the
supervisor does not know how a replica was started: its exit code comes from the fork server, which
is its parent and reaps it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from workbench.errors import UnavailableError
from workbench.serving.pids import is_running
from workbench.serving.replica_forkserver import FD_VARIABLE, MODULES

log = logging.getLogger("workbench.forkserver")

#: The first request waits for the preload (torch and the serving code: a few seconds on a busy machine).
REPLY_TIMEOUT_S = 120.0


class ForkServer:
    """One fork server per supervisor; requests are answered in order, one at a time."""

    def __init__(self, run_dir: Path, log_path: Path) -> None:
        self.run_dir = run_dir
        self.log_path = log_path
        self._request_lock = threading.Lock()  # one request in flight; also guards starting the server
        self._state = threading.Condition()  # replies, exits and the connection's generation
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._generation = 0  # bumped on every (re)start; a child knows the one it was forked by
        self._connected = False
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._preloaded = False  # the running server said it is ready to fork
        #: Why no server is started any more: closed, or one ended before it was ready.
        self._unusable: str | None = None

    # ------------------------------------------------------------- API
    def spawn(self, command: list[str], log_path: Path) -> ForkedChild:
        """Fork ``command`` (``python -m MODULE ARGS...``) with the caller's environment and directory."""
        module, argv = _module_command(command)
        with self._request_lock:
            if self._unusable is not None:
                raise UnavailableError(self._unusable)
            request_id = next(self._ids)
            request = {
                "id": request_id,
                "module": module,
                "argv": argv,
                "log": str(log_path),
                "env": dict(os.environ),
                "cwd": os.getcwd(),
            }
            for attempt in (1, 2):
                channel, generation = self._ensure_started()
                try:
                    channel.sendall(json.dumps(request).encode() + b"\n")
                    break
                except OSError as exc:
                    # Died since its last message (its end of file not read yet): nothing was delivered,
                    # so a fresh server may take the request.
                    self._stop()
                    if attempt == 2:
                        raise UnavailableError(f"the replica fork server is gone: {exc}") from exc
            reply = self._reply(request_id, generation)
        if "error" in reply:
            raise UnavailableError(f"the replica fork server refused: {reply['error']}")
        return ForkedChild(self, int(reply["pid"]), generation)

    def exit_code(self, pid: int, generation: int) -> int | None:
        """The child's exit code once it ended; None while it runs."""
        with self._state:
            if pid in self._exits:
                return self._exits[pid]
            if self._connected and self._generation == generation:
                return None
        # Its fork server is gone (crashed or closed): the child was handed to init, which reaps it, so
        # only whether it still runs can be known.
        return None if is_running(pid) else 1

    def close(self) -> None:
        """End the fork server (its children keep running)."""
        with self._request_lock:
            self._unusable = "the replica fork server is closed"
            self._stop()

    # ------------------------------------------------------- internals
    def _ensure_started(self) -> tuple[socket.socket, int]:
        with self._state:
            if self._connected and self._channel is not None:
                return self._channel, self._generation
        self._stop()
        ours, theirs = socket.socketpair()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **{FD_VARIABLE: str(theirs.fileno())})
        try:
            with self.log_path.open("ab") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "workbench.serving.replica_forkserver", str(self.run_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),),
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            ours.close()
            raise UnavailableError(f"the replica fork server could not start: {exc}") from exc
        finally:
            theirs.close()
        with self._state:
            self._generation += 1
            self._connected, self._preloaded = True, False
            self._process, self._channel = process, ours
            generation = self._generation
        threading.Thread(
            target=self._read, args=(ours, generation), name="forkserver-reader", daemon=True
        ).start()
        log.info("replica fork server started (pid %d)", process.pid)
        return ours, generation

    def _reply(self, request_id: int, generation: int) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        with self._state:
            while request_id not in self._replies:
                if not (self._connected and self._generation == generation):
                    raise UnavailableError(
                        self._unusable or f"the replica fork server ended: see {self.log_path}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._state.wait(remaining)
            else:
                return self._replies.pop(request_id)
        self._stop()  # a server that does not answer is not trusted with the next request either
        raise UnavailableError(f"the replica fork server did not answer in {REPLY_TIMEOUT_S:.0f} s")

    def _read(self, channel: socket.socket, generation: int) -> None:
        buffered = b""
        try:
            while chunk := channel.recv(65536):
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    self._dispatch(json.loads(line))
        except (OSError, ValueError) as exc:
            log.warning("replica fork server connection lost: %s", exc)
        with self._state:
            if self._generation == generation:
                if not self._preloaded and self._process is not None:
                    self._unusable = f"the replica fork server ended before it was ready: see {self.log_path}"
                self._connected = False
            self._state.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._state:
            if "exit" in message:
                self._exits[int(message["exit"])] = int(message["code"])
            elif "id" in message and message["id"] is not None:
                self._replies[int(message["id"])] = message
            elif "ready" in message:
                self._preloaded = True
                log.info("replica fork server preloaded %s", ", ".join(message["ready"]))
            self._state.notify_all()

    def _stop(self) -> None:
        with self._state:
            process, channel = self._process, self._channel
            self._process, self._channel, self._connected = None, None, False
            self._state.notify_all()
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.shutdown(socket.SHUT_RDWR)
            channel.close()
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ForkedChild:
    """A replica forked by the fork server: ``pid``, ``poll`` and ``wait`` as on ``subprocess.Popen``."""

    def __init__(self, server: ForkServer, pid: int, generation: int) -> None:
        self.server = server
        self.pid = pid
        self.generation = generation
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid, self.generation)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked pid {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code


def _module_command(command: list[str]) -> tuple[str, list[str]]:
    """``[python, "-m", module, *argv]`` → (module, argv), for a module the fork server may run."""
    if len(command) < 3 or command[0] != sys.executable or command[1] != "-m" or command[2] not in MODULES:
        raise UnavailableError(f"not a command the replica fork server runs: {command[:3]}")
    return command[2], list(command[3:])
