"""The load generators of bench/ingest.py: open loop (latency counts queueing from each request's due
time) and closed loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bench import _http_load as load

pytestmark = pytest.mark.unit


def result(rate: float, p99: float) -> load.Result:
    return load.Result(rate, 100, rate, p99 / 2, p99, 0, None)


def test_crossing_interpolates_between_the_last_rate_under_the_limit_and_the_first_over_it():
    results = [result(100, 10), result(200, 15), result(300, 35)]
    assert load.crossing(results, 20) == pytest.approx(225)
    assert load.crossing(results, 50) is None
    assert load.crossing([result(100, 30)], 20) == 100


class SlowServer:
    """Answers each request after `delay` seconds, one request at a time over all connections."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"Content-Length")
                )
            )
            await reader.readexactly(length)
            async with self.lock:
                await asyncio.sleep(self.delay)
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    def serve(self) -> None:
        async def main() -> None:
            self.lock = asyncio.Lock()
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await asyncio.sleep(30)

        try:
            self.loop.run_until_complete(main())
        except RuntimeError:
            pass


def test_a_server_slower_than_the_offered_rate_shows_growing_queueing_in_the_latencies():
    server = SlowServer(delay=0.02)  # serves 50 requests/s
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(5)
    requests = [load.request_bytes("127.0.0.1", server.port, "/x", {}, b"{}") for _ in range(40)]
    slow = load.run("127.0.0.1", server.port, requests, rate=200, connections=8)
    # 40 requests due within 0.2 s, served one per 20 ms: the last waits ~0.8 s from its due time.
    assert slow.failures == 0
    assert slow.achieved < 60
    assert slow.p99_ms > 500
    easy = load.run("127.0.0.1", server.port, requests[:10], rate=20, connections=8)
    assert easy.p99_ms < 200
    assert easy.achieved == pytest.approx(20, rel=0.35)


def test_the_closed_loop_sends_each_request_once_and_waits_for_each_answer():
    server = SlowServer(delay=0.02)  # one request at a time: 10 requests take 0.2 s, however many clients
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(5)
    requests = [load.request_bytes("127.0.0.1", server.port, "/x", {}, b"{}") for _ in range(10)]
    result = load.closed("127.0.0.1", server.port, requests, connections=4)
    assert result.failures == 0
    assert len(result.latencies) == 10
    assert result.wall >= 0.18
    # Four clients queue behind one another at the server: the later answers waited for the earlier ones.
    assert max(result.latencies) >= 0.05
    refused = load.closed("127.0.0.1", server.port, requests[:3], connections=2, expect=200)
    assert refused.failures == 3
    assert refused.first_failure == "HTTP 201"
