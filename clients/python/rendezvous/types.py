"""The protocol's data as typed dictionaries (proto/PROTOCOL.md 5; proto/schema/).

tests/test_client.py compares each with its entry in proto/schema/rendezvous.schema.json:
the same keys, the same ones required.
"""

from typing import Any, Literal, NotRequired, Optional, TypedDict

State = Literal["RSS_UNKNOWN", "RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED",
                "RSS_CANCELLED", "RSS_DECLINED", "RSS_TERMINATED"]

FINAL_STATES = frozenset(("RSS_CANCELLED", "RSS_DECLINED", "RSS_TERMINATED"))


class Confirmed(TypedDict):
    inviter: bool
    invitee: bool


class Record(TypedDict):
    """A session record (PROTOCOL.md 5.1): the result of every session change and get."""
    session: str
    state: State
    inviter: str
    invitee: str
    remote_user: Optional[str]
    flags: int
    created: int
    updated: int
    expires: int
    event: int
    topic: str
    inviter_device: str
    answered_by: Optional[str]
    by_device: Optional[str]
    confirmed: NotRequired[Confirmed]
    reason: NotRequired[str]
    replaced_by: NotRequired[str]
    code: NotRequired[int]
    data: NotRequired[Any]
    app_data: NotRequired[Any]


class Event(TypedDict):
    """The params of session.state_changed (PROTOCOL.md 5.2)."""
    session: str
    prev: State
    state: State
    event: int
    time: int
    by: Optional[str]
    by_device: Optional[str]
    inviter: str
    invitee: str
    topic: str
    reason: NotRequired[str]
    replaced_by: NotRequired[str]
    code: NotRequired[int]
    data: NotRequired[Any]
    replay: NotRequired[bool]


class Outcome(TypedDict):
    """The params of session.outcome (PROTOCOL.md 4.8): how a session ended."""
    session: str
    state: State
    by: Optional[str]
    by_device: Optional[str]
    event: int
    time: int
    topic: str
    reason: NotRequired[str]
    code: NotRequired[int]
    data: NotRequired[Any]
    replaced_by: NotRequired[str]


# The params of session.context_data: what the other party sent with session.send. ("from"
# is a Python keyword, hence the functional form.)
ContextData = TypedDict("ContextData", {"session": str, "from": str, "data": Any})


class Presence(TypedDict):
    """presence.get's result and presence.changed's params (PROTOCOL.md 4.7)."""
    user: str
    online: bool
    devices: list[str]


class Hello(TypedDict):
    """The result of hello."""
    user: str
    device: str
    observer: bool
    admin: bool
    server: str
    version: str
    connection: int
    last_event: int
    outcomes_dropped: NotRequired[int]


class Subscribed(TypedDict):
    """The result of subscribe; subscription is the client's handle for unsubscribe (the
    daemon's id changes with each connection)."""
    subscription: int
    last_event: int
    presence: NotRequired[Presence]


class SessionList(TypedDict):
    sessions: list[Record]
    next: NotRequired[str]
