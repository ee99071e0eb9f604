"""Bus events to asyncio consumers (WebSocket and Server-Sent Events clients).

::

    bot thread ── bus.publish ──> EventHub.deliver ──call_soon_threadsafe──> client queue 1 ──> SSE
                                                   ──────────────────────> client queue 2 ──> WebSocket
    (no bot in this process: a task tails <state_dir>/events.jsonl and feeds the same queues)

The bot thread never waits for a client: :meth:`EventHub.deliver` only schedules a ``put_nowait`` on the
server's loop (the :class:`~thunes.core.events.QueuedSubscriber` rule), and a client whose queue is full
loses the event (counted in :attr:`Client.dropped`, then told with a ``Dropped`` notice) rather than
slowing trading. Clients filter by event kind (``?types=OrderFilled,PositionOpened``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thunes.core.errors import ConfigError
from thunes.core.events import EVENT_TYPES, Event, EventBus

__all__ = ["Client", "EventHub", "parse_types"]

log = logging.getLogger(__name__)


def parse_types(types: str | None) -> frozenset[str] | None:
    """``"OrderFilled,PositionOpened"`` -> the set; None or empty: every kind. Unknown names are an error."""
    if types is None or not types.strip():
        return None
    names = frozenset(t.strip() for t in types.split(",") if t.strip())
    unknown = sorted(names - EVENT_TYPES.keys())
    if unknown:
        raise ConfigError(f"unknown event type(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; known: "
                          f"{', '.join(sorted(EVENT_TYPES))}")
    return names


@dataclass(eq=False)
class Client:
    kinds: frozenset[str] | None
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: int = 0
    reported: int = 0  # drops already told to the client

    def offer(self, item: dict[str, Any]) -> None:
        if self.kinds is not None and item.get("kind") not in self.kinds:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1


class EventHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._buses: list[EventBus] = []
        self._tail: asyncio.Task[None] | None = None
        self.delivered = 0

    # -- sources -----------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, events_file: Path | None) -> None:
        """Called on the server's loop at start-up; tails ``events_file`` until a bus is attached."""
        self._loop = loop
        if events_file is not None and not self._buses:
            self._tail = loop.create_task(self._tail_file(Path(events_file)))

    def attach_bus(self, bus: EventBus) -> None:
        """Follow an in-process bot's bus (replaces the file tail: the same events, sooner)."""
        if any(b is bus for b in self._buses):
            return
        self._buses.append(bus)
        bus.subscribe(self.deliver, name="api-event-stream")
        if self._tail is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._tail.cancel)
            self._tail = None

    def deliver(self, event: Event) -> None:
        """Bus handler: runs on the publishing (bot) thread and never blocks it."""
        loop = self._loop
        if loop is None or not self._clients or loop.is_closed():
            return
        item = event.to_json()
        item["ts_ms"] = event.ts_ms
        try:
            loop.call_soon_threadsafe(self._fan_out, item)
        except RuntimeError:  # the loop closed meanwhile (server shutting down)
            pass

    def _fan_out(self, item: dict[str, Any]) -> None:
        self.delivered += 1
        for c in list(self._clients):
            c.offer(item)

    async def _tail_file(self, path: Path, poll_s: float = 0.25) -> None:
        pos = path.stat().st_size if path.exists() else 0
        buf = b""
        while True:
            await asyncio.sleep(poll_s)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < pos:  # a new run replaced the file
                pos, buf = 0, b""
            if size == pos:
                continue
            with path.open("rb") as fh:
                fh.seek(pos)
                chunk = fh.read(size - pos)
            pos = size
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict) and "kind" in item:
                    self._fan_out(item)

    # -- consumers ---------------------------------------------------------------------------------
    def connect(self, kinds: frozenset[str] | None) -> Client:
        c = Client(kinds)
        self._clients.add(c)
        return c

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def close(self) -> None:
        for bus in self._buses:
            for sub in bus.subscriptions:
                if sub.handler == self.deliver:
                    bus.unsubscribe(sub)
        if self._tail is not None:
            self._tail.cancel()
            self._tail = None
