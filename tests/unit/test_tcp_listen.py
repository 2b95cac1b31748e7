"""The listening sockets of the control plane, router and replicas: connections accepted from them have
Nagle's algorithm off. With it on, a response on a kept-alive connection waited ~40 ms for its body
(the headers' segment unacknowledged behind the client's delayed ACK); asyncio turns it off only for
sockets created with ``IPPROTO_TCP``."""

from __future__ import annotations

import asyncio
import socket

import pytest

from workbench.errors import UnavailableError
from workbench.server import bind_socket
from workbench.serving.process import bind_tcp


def _nodelay_of_an_accepted_connection(sock: socket.socket) -> int:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("socket")
            seen.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    return asyncio.run(main())


@pytest.mark.parametrize("bind", [bind_tcp, bind_socket])
def test_connections_accepted_by_asyncio_have_nagle_off(bind: object) -> None:
    sock = bind("127.0.0.1", 0)  # type: ignore[operator]
    assert sock.proto == socket.IPPROTO_TCP
    assert _nodelay_of_an_accepted_connection(sock) != 0


def test_a_taken_port_is_a_clear_error_and_leaves_no_socket_open() -> None:
    taken = bind_tcp("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(UnavailableError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)
    finally:
        taken.close()
