"""What the router counts and bounds: a shadow never loaded more than the live version, a request its
client abandoned counted as such."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from workbench.serving.live_concurrency import LiveConcurrency
from workbench.serving.router_app import RouterApp
from workbench.serving.routes import EndpointRoutes, RouteTable, ShadowRoute, Upstream, VersionRoute
from workbench.serving.upstreams import UpstreamResponse


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_peak_lasts_one_to_two_windows_then_follows_the_traffic() -> None:
    clock = _Clock()
    live = LiveConcurrency(window_s=1.0, clock=clock)
    assert live.recent_peak("e") == 1  # never seen: one request was answered, so one is allowed
    for _ in range(5):
        live.enter("e")
    for _ in range(4):
        live.leave("e")
    assert live.recent_peak("e") == 5
    clock.now += 1.5  # the next window: the last one's peak still counts
    assert live.recent_peak("e") == 5
    clock.now += 1.0  # two windows on: only what was seen since
    assert live.recent_peak("e") == 1
    live.leave("e")
    clock.now += 5.0
    assert live.recent_peak("e") == 1


def test_a_quiet_gap_forgets_the_old_peak_but_keeps_what_is_still_in_flight() -> None:
    clock = _Clock()
    live = LiveConcurrency(window_s=1.0, clock=clock)
    for _ in range(8):
        live.enter("e")
    for _ in range(5):
        live.leave("e")
    clock.now += 3.0
    assert live.recent_peak("e") == 3


class _StalledShadow:
    """The live version answers at once; the shadow's replica holds every request until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.shadow_calls = 0

    def sync(self, upstreams: Mapping[str, Upstream]) -> None:
        pass

    async def send(
        self, upstreams: tuple[Upstream, ...], method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        if upstreams[0].replica_id == "shadow":
            self.shadow_calls += 1
            await self.release.wait()
        else:
            await asyncio.sleep(0)  # a live answer takes a turn of the loop, so concurrent ones overlap
        return UpstreamResponse(status=200, headers=[(b"content-type", b"application/json")], body=b"{}")

    async def close(self) -> None:
        pass


def _table() -> RouteTable:
    live = VersionRoute(model="m", version=1, weight=100, upstreams=(Upstream(replica_id="live", port=1),))
    shadow = ShadowRoute(model="m", version=2, upstreams=(Upstream(replica_id="shadow", port=2),))
    return RouteTable(
        revision=1, endpoints={"e": EndpointRoutes(name="e", versions=(live,), shadows=(shadow,))}
    )


def _outcomes(app: RouterApp) -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for metric in app.metrics.shadows.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


def test_a_stalled_shadow_sheds_copies_beyond_the_live_concurrency_instead_of_queueing_them() -> None:
    async def scenario() -> tuple[int, dict[str, float], int, dict[str, float]]:
        pools = _StalledShadow()
        app = RouterApp(token="t", routes_file=None, pools=pools, min_shadow_in_flight=1)
        app.apply(_table())

        async def body(limit: int) -> bytes:
            return b'{"inputs": []}'

        async def one_request() -> None:
            routed = await app.route("POST", "/v2/models/e/infer", lambda _: None, {}, body, protocol="http")
            app.settle(routed)

        for _ in range(20):  # one client, one request at a time: the live version never has two
            await one_request()
            await asyncio.sleep(0)
        stalled_calls, stalled = pools.shadow_calls, _outcomes(app)
        await asyncio.gather(*(one_request() for _ in range(3)))  # three at once: the peak is now 3
        await asyncio.sleep(0)
        pools.release.set()
        await asyncio.sleep(0.01)
        return stalled_calls, stalled, pools.shadow_calls, _outcomes(app)

    stalled_calls, stalled, calls, outcomes = asyncio.run(scenario())
    assert stalled_calls == 1
    assert stalled == {"shed": 19.0}
    assert calls == 3  # the peak of 3 let two more in while the first was still held
    assert outcomes["shed"] == 20.0
    assert outcomes["sent"] == 3.0


def test_light_traffic_mirrors_whole_up_to_the_floor() -> None:
    async def scenario() -> tuple[int, dict[str, float]]:
        pools = _StalledShadow()
        app = RouterApp(token="t", routes_file=None, pools=pools, min_shadow_in_flight=8)
        app.apply(_table())

        async def body(limit: int) -> bytes:
            return b'{"inputs": []}'

        for _ in range(10):
            routed = await app.route("POST", "/v2/models/e/infer", lambda _: None, {}, body, protocol="http")
            app.settle(routed)
            await asyncio.sleep(0)
        calls = pools.shadow_calls
        pools.release.set()
        await asyncio.sleep(0.01)
        return calls, _outcomes(app)

    calls, outcomes = asyncio.run(scenario())
    assert calls == 8
    assert outcomes == {"sent": 8.0, "shed": 2.0}


def test_a_request_its_client_abandons_is_counted_as_client_closed() -> None:
    async def scenario() -> dict[tuple[str, str], float]:
        pools = _StalledShadow()
        app = RouterApp(token="t", routes_file=None, pools=pools)
        live = VersionRoute(
            model="m", version=1, weight=100, upstreams=(Upstream(replica_id="shadow", port=1),)
        )
        app.apply(RouteTable(revision=1, endpoints={"e": EndpointRoutes(name="e", versions=(live,))}))

        async def body(limit: int) -> bytes:
            return b"{}"

        call = asyncio.create_task(
            app.route("POST", "/v2/models/e/infer", lambda _: None, {}, body, protocol="grpc")
        )
        while pools.shadow_calls == 0:  # the replica holds it: the client gives up
            await asyncio.sleep(0)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        return {
            (s.labels["status"], s.labels["protocol"]): s.value
            for metric in app.metrics.requests.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        }

    assert asyncio.run(scenario()) == {("499", "grpc"): 1.0}
