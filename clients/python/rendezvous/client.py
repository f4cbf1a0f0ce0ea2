"""An asyncio client of rendezvousd: one connection at a time to one of several addresses,
re-established when it drops, with every subscription resumed where it left off.

Guarantees to the caller (proto/PROTOCOL.md 5.2 "Resuming", 4.6, 4.8):
- events() yields each session.state_changed once, in event-id order, across reconnects:
  the client keeps the highest event id it has seen and resubscribes with since=it;
- every change carries an idempotency key (generated unless given), so a call whose reply
  was lost with its connection is sent again after the reconnect and done once;
- outcomes() yields each session's outcome once, until it is acknowledged (session_ack).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import secrets
import ssl as ssl_module
from typing import Any, AsyncIterator, Iterable, Optional, Sequence, Union, cast

from .types import ContextData, Event, Hello, Outcome, Presence, Record, SessionList, Subscribed

# Methods that change something: they carry an idempotency key (PROTOCOL.md 4.6).
CHANGES = frozenset(("session.create", "session.invite", "session.accept", "session.decline",
                     "session.cancel", "session.connect", "session.terminate", "session.send"))

Address = Union[str, tuple[str, int]]
JSON = dict[str, Any]  # a JSON object, as json.loads() makes it

# How many of the last event ids delivered are remembered, to drop one that comes again.
RECENT = 65536


class RpcError(Exception):
    """An error reply: code, message and data as the daemon sent them (PROTOCOL.md 6)."""

    def __init__(self, error: JSON):
        self.code: int = error.get("code", 0)
        self.message: str = error.get("message", "")
        self.data: Any = error.get("data")
        super().__init__(f"{self.code}: {self.message}")


class HistoryGone(Exception):
    """Raised by events(): the daemon no longer holds the events after the last one seen
    (4100), so some were missed. Re-read the state you need (session_get, session_list);
    the subscriptions go on with the events that follow."""

    def __init__(self, last_event: Optional[int]):
        self.last_event = last_event
        super().__init__(f"history gone: events up to {last_event} were missed")


class Closed(Exception):
    """The client was closed, or can no longer go on (authentication refused, kicked by an
    admin): every call and iterator ends with it."""


class _Lost(Exception):
    """The connection a request was sent on is gone (internal: the request is sent again)."""


def parse_address(a: Address) -> tuple[Any, ...]:
    """("tcp", host, port) or ("unix", path) from "host:port", "[v6]:port",
    "unix:/path" or (host, port)."""
    if isinstance(a, tuple):
        return ("tcp", a[0], int(a[1]))
    if a.startswith("unix:"):
        return ("unix", a[5:])
    host, sep, port = a.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {a!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return ("tcp", host, int(port))


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.inflight: dict[int, asyncio.Future[JSON]] = {}
        self.done: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def send(self, msg: Any) -> None:
        self.writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def lose(self, why: BaseException) -> None:
        if not self.done.done():
            self.done.set_result(why)
        for fut in self.inflight.values():
            if not fut.done():
                fut.set_exception(_Lost())
        self.inflight.clear()
        self.writer.close()


class Client:
    """Use Client.connect(); then the awaitable methods, one per protocol method, and the
    async iterators events(), outcomes(), context_data() and presence()."""

    def __init__(self, addresses: Sequence[Address], *, user: Optional[str] = None,
                 token: Optional[str] = None, device: Optional[str] = None,
                 client: str = "rendezvous-python/0.1", tls: Union[None, bool,
                                                                   ssl_module.SSLContext] = None,
                 timeout: float = 10.0, backoff: tuple[float, float] = (0.05, 5.0)):
        if not addresses:
            raise ValueError("no address")
        if user is None and token is None:
            raise ValueError("user or token is needed")
        self.addresses = [parse_address(a) for a in addresses]
        self.user, self.token, self.device, self.client_name = user, token, device, client
        self.tls = ssl_module.create_default_context() if tls is True else tls or None
        self.timeout, self.backoff = timeout, backoff
        self.last_event = 0  # the highest event id seen: resubscriptions start after it
        self.hello_result: Optional[Hello] = None
        self.address: Optional[tuple[Any, ...]] = None  # where the connection is now
        self._conn: Optional[_Connection] = None
        self._ready = asyncio.Event()
        self._closed: Optional[BaseException] = None
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        # handle -> {"target": params, "id": the daemon's id now, "floor": the event id it
        # started after, "replayed": its replay was read whole, "fresh": make it anew}
        self._subs: dict[int, JSON] = {}
        self._recent: collections.deque[int] = collections.deque()  # the last event ids delivered
        self._recent_set: set[int] = set()
        self._last_error: Optional[BaseException] = None
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._outcomes: asyncio.Queue[Any] = asyncio.Queue()
        self._contexts: asyncio.Queue[Any] = asyncio.Queue()
        self._presence: asyncio.Queue[Any] = asyncio.Queue()
        self._outcomes_seen: set[str] = set()  # delivered, not yet acknowledged
        self._first: Optional[asyncio.Future[None]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self.reconnects = 0

    # -- connecting ---------------------------------------------------------------------------

    @classmethod
    async def connect(cls, addresses: Union[Address, Sequence[Address]], **kw: Any) -> "Client":
        """Connect to the first address that answers (trying each in turn, with back-off,
        for up to timeout seconds) and say hello. addresses: "HOST:PORT", "[V6]:PORT",
        "unix:/PATH", (HOST, PORT), a list of them, or "A:P,B:P,C:P". Keywords: user
        or token (a JWT, --auth jwt), device (the same on every connection; without it
        the daemon names one, kept for reconnects), client, tls (True, or an
        ssl.SSLContext), timeout (seconds, for connecting and for each call), backoff
        ((first, most) seconds between rounds of failed attempts)."""
        if isinstance(addresses, str):
            addresses = addresses.split(",")  # "A:P,B:P,C:P", as rendezvousctl --connect
        elif isinstance(addresses, tuple) and len(addresses) == 2 and \
                isinstance(addresses[1], int):
            addresses = [cast(tuple[str, int], addresses)]  # one (host, port)
        c = cls(cast(Sequence[Address], addresses), **kw)
        c._first = asyncio.get_running_loop().create_future()
        c._task = asyncio.get_running_loop().create_task(c._run())
        try:
            await asyncio.wait_for(asyncio.shield(c._first), c.timeout)
        except asyncio.TimeoutError:
            c._first.cancel()
            await c.close()
            raise ConnectionError(f"no address answered in {c.timeout} s: "
                                  f"{c._last_error}") from None
        except BaseException:
            c._first.cancel()
            await c.close()
            raise
        return c

    async def close(self) -> None:
        """Close the connection and stop reconnecting; pending calls raise Closed."""
        self._fail(Closed("closed"))
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fail(self, why: BaseException) -> None:
        if self._closed is None:
            self._closed = why
        if self._first is not None and not self._first.done():
            self._first.set_exception(why)
        if self._conn is not None:
            self._conn.lose(why)
        self._ready.set()  # wakes callers, who then see _closed
        for q in (self._events, self._outcomes, self._contexts, self._presence):
            q.put_nowait(why)

    async def _open(self, addr: tuple[Any, ...]) -> _Connection:
        limit = 1 << 24  # a line may hold --max-data of context data, and more for a batch
        if addr[0] == "unix":
            r, w = await asyncio.open_unix_connection(addr[1], limit=limit)
        else:
            r, w = await asyncio.open_connection(
                addr[1], addr[2], ssl=self.tls, limit=limit,
                server_hostname=addr[1] if self.tls is not None else None)
        return _Connection(r, w)

    async def _run(self) -> None:
        attempt, i = 0, 0
        while self._closed is None:
            addr = self.addresses[i % len(self.addresses)]
            conn = None
            try:
                conn = await asyncio.wait_for(self._open(addr), self.timeout)
                self.address = addr
                reader = asyncio.get_running_loop().create_task(self._read(conn))
                await asyncio.wait_for(self._handshake(conn), self.timeout)
                self._conn = conn
                if self._first is not None and not self._first.done():
                    self._first.set_result(None)
                self._ready.set()
                attempt = 0
                await conn.done
                await reader
            except Closed as e:
                self._fail(e)
                break
            except (OSError, ConnectionError, asyncio.TimeoutError, _Lost, RpcError,
                    ValueError) as e:
                self._last_error = e
            finally:
                self._ready.clear()
                self._conn = None
                if conn is not None:
                    conn.lose(ConnectionError("connection lost"))
            if self._closed is not None:
                break
            i += 1  # the next address
            if attempt >= len(self.addresses):
                # Every address failed in turn: back off, with jitter.
                low, high = self.backoff
                delay = min(high, low * 2 ** (attempt - len(self.addresses)))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            attempt += 1

    async def _handshake(self, conn: _Connection) -> None:
        params: JSON = {"client": self.client_name}
        if self.token is not None:
            params["token"] = self.token
        if self.user is not None:
            params["user"] = self.user
        if self.device is not None:
            params["device"] = self.device
        try:
            self.hello_result = await self._request(conn, "hello", params)
        except RpcError as e:
            if e.code in (4001, 4003, 4029, -32602):
                raise Closed(f"hello refused: {e}") from e
            raise
        # The device the daemon assigned, if none was given: the same one after reconnects,
        # so that peer grace and outcomes follow this client.
        self.device = self.hello_result["device"] if self.hello_result else self.device
        if self._first is None or self._first.done():
            self.reconnects += 1  # before the resume, whose replays may come first
        await self._resume(conn)

    async def _resume(self, conn: _Connection) -> None:
        """Make every subscription again, in one batch, each from the last event seen (or
        from its own since, if its replay was not read whole): nothing missed, and what
        comes twice is dropped (_deliver)."""
        if not self._subs:
            return
        handles = list(self._subs)
        batch: list[JSON] = []
        futs: list[asyncio.Future[JSON]] = []
        for h in handles:
            sub = self._subs[h]
            params = dict(sub["target"])
            if "presence" not in params and not sub["fresh"]:
                params["since"] = max(self.last_event, sub["floor"]) if sub["replayed"] \
                    else sub["floor"]
            id = next(self._ids)
            futs.append(self._expect(conn, id))
            batch.append({"jsonrpc": "2.0", "method": "subscribe", "params": params, "id": id})
        conn.send(batch)
        gone = None
        for h, fut in zip(handles, futs):
            sub, reply = self._subs[h], await fut
            if "error" in reply and reply["error"].get("code") in (4100, -32602) and \
                    "since" in batch[handles.index(h)]["params"]:
                # Older than the history holds, or newer than the daemon has (it lost
                # events): subscribe anew, and tell events().
                gone = reply["error"].get("data", {}).get("last_event")
                reply = await self._raw(conn, "subscribe", dict(sub["target"]))
                sub["fresh"] = True
            if "error" in reply:
                raise RpcError(reply["error"])
            sub["id"] = reply["result"]["subscription"]
            if sub["fresh"]:
                sub["floor"], sub["fresh"] = reply["result"]["last_event"], False
        # Replies come in order, after the replays they cause: once this one is here,
        # every replay was read.
        await self._request(conn, "ping", None)
        for sub in self._subs.values():
            sub["replayed"] = True
        if gone is not None:
            self._events.put_nowait(HistoryGone(gone))

    # -- the wire -------------------------------------------------------------------------------

    def _expect(self, conn: _Connection, id: int) -> "asyncio.Future[JSON]":
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        conn.inflight[id] = fut
        return fut

    async def _raw(self, conn: _Connection, method: str, params: Optional[JSON]) -> JSON:
        id = next(self._ids)
        fut = self._expect(conn, id)
        msg: JSON = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            msg["params"] = params
        conn.send(msg)
        return await fut

    async def _request(self, conn: _Connection, method: str, params: Optional[JSON]) -> Any:
        reply = await self._raw(conn, method, params)
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]

    async def _read(self, conn: _Connection) -> None:
        why: BaseException = ConnectionError("closed by the daemon")
        try:
            while True:
                line = await conn.reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                msg = json.loads(line)
                for m in msg if isinstance(msg, list) else [msg]:
                    self._dispatch(conn, m)
        except (OSError, ValueError, asyncio.LimitOverrunError) as e:
            why = e
        except Closed as e:
            why = e
            self._fail(e)
        conn.lose(why)

    def _dispatch(self, conn: _Connection, m: JSON) -> None:
        method = m.get("method")
        if method is not None and "id" not in m:
            self._notification(method, m.get("params") or {})
            return
        id = m.get("id")
        if id is None and "error" in m:
            err = m["error"]
            if err.get("code") == 4100:  # the store lost events: resume cannot fill them
                self._events.put_nowait(HistoryGone(err.get("data", {}).get("last_event")))
                # Ids may be given again to other events: start afresh.
                self.last_event = 0
                self._recent.clear()
                self._recent_set.clear()
                for sub in self._subs.values():
                    sub["fresh"] = True
            elif err.get("code") == 4003:  # disconnected by an admin: do not come back
                raise Closed(f"disconnected: {err.get('message')}")
            return  # the connection closes; reconnecting follows
        fut = conn.inflight.pop(id, None) if isinstance(id, int) else None
        if fut is not None and not fut.done():
            fut.set_result(m)

    def _notification(self, method: str, params: JSON) -> None:
        if method == "session.state_changed":
            self._deliver(params)
        elif method == "session.outcome":
            sid = str(params.get("session"))
            if sid not in self._outcomes_seen:
                self._outcomes_seen.add(sid)
                self._outcomes.put_nowait(params)
        elif method == "session.context_data":
            self._contexts.put_nowait(params)
        elif method == "presence.changed":
            self._presence.put_nowait(params)
        # server.shutdown: the daemon closes the connection next; reconnecting follows.

    def _deliver(self, ev: JSON) -> None:
        id = ev.get("event", 0)
        if id in self._recent_set:
            return  # delivered before a reconnect, or replayed twice
        self._recent.append(id)
        self._recent_set.add(id)
        if len(self._recent) > RECENT:
            self._recent_set.discard(self._recent.popleft())
        self.last_event = max(self.last_event, id)
        self._events.put_nowait(ev)

    async def call(self, method: str, params: Optional[JSON] = None) -> Any:
        """Any protocol method: its result, or RpcError. A change gets an idempotency key
        unless params has one. Sent again on the next connection if its connection drops
        before the reply, and after retry_after_ms when the daemon answers 5003, until
        timeout seconds have passed."""
        if method in CHANGES:
            params = dict(params or {})
            params.setdefault("idempotency_key", secrets.token_hex(16))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError(f"{method}: no answer in {self.timeout} s")
            conn = await self._connection(left)
            try:
                reply = await asyncio.wait_for(self._raw(conn, method, params),
                                               deadline - loop.time())
            except _Lost:
                continue
            if "error" in reply:
                err = reply["error"]
                retry = (err.get("data") or {}).get("retry_after_ms")
                if err.get("code") == 5003 and retry is not None:
                    await asyncio.sleep(min(retry / 1000, max(0.0, deadline - loop.time())))
                    continue
                raise RpcError(err)
            return reply["result"]

    async def _connection(self, timeout: float) -> _Connection:
        while True:
            if self._closed is not None:
                raise Closed(str(self._closed))
            if self._conn is not None and self._ready.is_set():
                return self._conn
            await asyncio.wait_for(self._ready.wait(), timeout)

    # -- iterators ------------------------------------------------------------------------------

    async def _iterate(self, q: "asyncio.Queue[Any]") -> AsyncIterator[Any]:
        while True:
            item = await q.get()
            if isinstance(item, Closed):
                q.put_nowait(item)  # for every other iterator of this queue
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def events(self) -> AsyncIterator[Event]:
        """session.state_changed params of every subscription: each event once, in order,
        across reconnects. Raises HistoryGone when some could not be recovered; iterate
        again to go on. Ends when the client is closed."""
        return self._iterate(self._events)

    def outcomes(self) -> AsyncIterator[Outcome]:
        """session.outcome params, each session once until acknowledged with session_ack."""
        return self._iterate(self._outcomes)

    def context_data(self) -> AsyncIterator[ContextData]:
        """session.context_data params: what the other party sent with session_send."""
        return self._iterate(self._contexts)

    def presence(self) -> AsyncIterator[Presence]:
        """presence.changed params of subscribe(presence=USER) subscriptions."""
        return self._iterate(self._presence)

    # -- the protocol's methods -----------------------------------------------------------------

    async def ping(self) -> str:
        return cast(str, await self.call("ping"))

    async def session_create(self, invitee: str, *, ttl: Optional[float] = None,
                             data: Any = None, topic: Optional[str] = None,
                             idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.create", _params(invitee=invitee, ttl=ttl, data=data,
                                                         topic=topic,
                                                         idempotency_key=idempotency_key)))

    async def session_invite(self, session: str, *,
                             idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.invite",
                               _params(session=session, idempotency_key=idempotency_key)))

    async def session_accept(self, session: str, *,
                             idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.accept",
                               _params(session=session, idempotency_key=idempotency_key)))

    async def session_decline(self, session: str, reason: Optional[str] = None, *,
                              idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.decline", _params(session=session, reason=reason,
                                                          idempotency_key=idempotency_key)))

    async def session_cancel(self, session: str, reason: Optional[str] = None, *,
                             idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.cancel", _params(session=session, reason=reason,
                                                         idempotency_key=idempotency_key)))

    async def session_connect(self, session: str, *,
                              idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.connect",
                               _params(session=session, idempotency_key=idempotency_key)))

    async def session_terminate(self, session: str, code: Optional[int] = None,
                                data: Any = None, *,
                                idempotency_key: Optional[str] = None) -> Record:
        return cast(Record, await self.call("session.terminate",
                               _params(session=session, code=code, data=data,
                                       idempotency_key=idempotency_key)))

    async def session_send(self, session: str, data: Any, *,
                           idempotency_key: Optional[str] = None) -> int:
        """Context data to the other party's engaged device; how many connections took it."""
        params = _params(session=session, idempotency_key=idempotency_key)
        params["data"] = data  # null is data too
        return cast(int, (await self.call("session.send", params))["delivered"])

    async def session_get(self, session: str) -> Record:
        return cast(Record, await self.call("session.get", {"session": session}))

    async def session_list(self, *, state: Optional[str] = None, limit: Optional[int] = None,
                           after: Optional[str] = None, all: Optional[bool] = None
                           ) -> SessionList:
        return cast(SessionList, await self.call("session.list",
                               _params(state=state, limit=limit, after=after, all=all)))

    async def session_ack(self, sessions: Iterable[str]) -> int:
        """Acknowledge outcomes: they are not sent again. How many were pending."""
        sessions = list(sessions)
        n = cast(int, (await self.call("session.ack", {"sessions": sessions}))["acked"])
        self._outcomes_seen.difference_update(sessions)
        return n

    async def session_outcomes(self) -> list[Outcome]:
        return cast(list[Outcome], (await self.call("session.outcomes"))["outcomes"])

    async def subscribe(self, *, session: Optional[str] = None, user: Optional[str] = None,
                        all: bool = False, presence: Optional[str] = None,
                        since: Optional[int] = None) -> Subscribed:
        """Follow one session, one user, everything (observers) or a user's presence.
        The result's subscription is this client's handle for unsubscribe; the
        subscription is made again on every reconnect, from the last event seen."""
        target = _params(session=session, user=user, all=True if all else None,
                         presence=presence)
        params = dict(target)
        if since is not None:
            params["since"] = since
        result = dict(await self.call("subscribe", params))
        handle = next(self._handles)
        sub = {"target": target, "id": result["subscription"], "fresh": False,
               "floor": since if since is not None else result["last_event"],
               "replayed": since is None}
        self._subs[handle] = sub
        if since is not None:
            # Its replay follows the reply; a later reply comes after it.
            try:
                await self.call("ping")
                sub["replayed"] = True
            except (asyncio.TimeoutError, Closed):
                pass  # resumed from its own since on the next connection
        result["subscription"] = handle
        return result  # type: ignore[return-value]

    async def unsubscribe(self, subscription: int) -> bool:
        sub = self._subs.pop(subscription, None)
        if sub is None:
            raise RpcError({"code": -32602, "message": "invalid params: no such subscription"})
        try:
            return cast(bool, await self.call("unsubscribe", {"subscription": sub["id"]}))
        except RpcError as e:
            if e.code == -32602:  # made on a connection since gone: nothing to remove
                return True
            raise

    async def presence_get(self, user: str) -> Presence:
        return cast(Presence, await self.call("presence.get", {"user": user}))

    async def admin_stats(self) -> JSON:
        return cast(JSON, await self.call("admin.stats"))

    async def admin_connections(self, *, limit: Optional[int] = None,
                                after: Optional[int] = None, user: Optional[str] = None) -> JSON:
        return cast(JSON, await self.call("admin.connections", _params(limit=limit, after=after, user=user)))

    async def admin_kick(self, *, connection: Optional[int] = None,
                         user: Optional[str] = None) -> int:
        return cast(int, (await self.call("admin.kick",
                                          _params(connection=connection, user=user)))["kicked"])


def _params(**kw: Any) -> JSON:
    return {k: v for k, v in kw.items() if v is not None}
