"""HTTP load for the ingest benchmarks: open loop (a fixed rate) and closed loop (N clients).

Open loop: requests are sent at a fixed rate, whatever the server does.

A closed loop (N clients, each sending its next request when the last one answered) slows down with the
server and hides queueing: its latencies look fine while throughput quietly drops. Here request i is due
at start + i / rate; its latency is counted from that due time to the end of its response, so time spent
waiting for a free connection or in the server's queue shows up in the figures (no coordinated omission).

The client is plain asyncio on keep-alive connections with a minimal HTTP/1.1 writer and reader, so it
costs the machine little next to the server it measures (both share the same two cores here).

Closed loop (`closed`): N keep-alive connections, each sending its next request when the last one
answered, for a server's sustained rate. The same lean client: 32 threads of http.client cost 0.14-0.23 ms
of CPU per request against 0.04 ms here (docs/benchmarks.md, "Single events: the load generator"), CPU
the server under test would otherwise have had on a two-core machine.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    rate: float  # offered requests per second
    sent: int
    achieved: float  # responses per second over the whole run (first due time to last response)
    p50_ms: float
    p99_ms: float
    failures: int
    first_failure: str | None


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        """Send one request, read its whole response; the status code."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


def request_bytes(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _run(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int, expect: int
) -> Result:
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    opened = []
    for _ in range(connections):
        reader, writer = await asyncio.open_connection(host, port)
        opened.append(writer)
        idle.put_nowait(_Connection(reader, writer))
    latencies: list[float] = []
    failures: list[str] = []
    interval = 1.0 / rate
    loop = asyncio.get_running_loop()

    async def one(request: bytes, due: float) -> None:
        connection = await idle.get()  # waiting here is queueing: it counts, from the due time
        try:
            status = await connection.exchange(request)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            reader, writer = await asyncio.open_connection(host, port)
            opened.append(writer)
            connection = _Connection(reader, writer)
        else:
            if status != expect:
                failures.append(f"HTTP {status}")
        latencies.append(loop.time() - due)
        idle.put_nowait(connection)

    start = loop.time() + 0.05
    tasks = []
    for i, request in enumerate(requests):
        due = start + i * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    finished = loop.time()
    for writer in opened:
        writer.close()
    quantiles = statistics.quantiles(latencies, n=100)
    return Result(
        rate=rate,
        sent=len(requests),
        achieved=len(requests) / (finished - start),
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        failures=len(failures),
        first_failure=failures[0] if failures else None,
    )


@dataclass(frozen=True)
class Closed:
    wall: float  # seconds from the first request to the last response
    latencies: list[float]  # per request, seconds
    failures: int
    first_failure: str | None


async def _closed(host: str, port: int, requests: Sequence[bytes], connections: int, expect: int) -> Closed:
    pending = iter(requests)
    latencies: list[float] = []
    failures: list[str] = []
    opened = [await asyncio.open_connection(host, port) for _ in range(min(connections, len(requests)))]
    loop = asyncio.get_running_loop()

    async def client(connection: _Connection) -> None:
        for request in pending:  # one shared iterator: each request is sent once, by whichever is free
            started = loop.time()
            try:
                status = await connection.exchange(request)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                reader, writer = await asyncio.open_connection(host, port)
                opened.append((reader, writer))
                connection = _Connection(reader, writer)
                continue
            latencies.append(loop.time() - started)
            if status != expect:
                failures.append(f"HTTP {status}")

    started = loop.time()
    await asyncio.gather(*(client(_Connection(reader, writer)) for reader, writer in opened))
    wall = loop.time() - started
    for _, writer in opened:
        writer.close()
    return Closed(wall, latencies, len(failures), failures[0] if failures else None)


def closed(host: str, port: int, requests: Sequence[bytes], connections: int, expect: int = 201) -> Closed:
    """Send `requests` over `connections` keep-alive connections, each sending its next request as soon as
    its last one was answered; latency per request from its send to the end of its response."""
    return asyncio.run(_closed(host, port, requests, connections, expect))


def run(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int = 64, expect: int = 201
) -> Result:
    """Send `requests` (complete HTTP/1.1 requests) at `rate` per second over up to `connections` keep-alive
    connections; latency from each request's due time to the end of its response."""
    return asyncio.run(_run(host, port, requests, rate, connections, expect))


def crossing(results: Sequence[Result], limit_ms: float) -> float | None:
    """The offered rate at which p99 first exceeds `limit_ms`, interpolated linearly between the last rate
    under it and the first over it; None when no measured rate goes over."""
    below: Result | None = None
    for result in sorted(results, key=lambda r: r.rate):
        if result.p99_ms > limit_ms:
            if below is None:
                return result.rate
            share = (limit_ms - below.p99_ms) / (result.p99_ms - below.p99_ms)
            return below.rate + share * (result.rate - below.rate)
        below = result
    return None
