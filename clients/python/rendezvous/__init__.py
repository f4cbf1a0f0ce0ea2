"""A client of rendezvousd, the invitation daemon (proto/PROTOCOL.md), on asyncio.

    import asyncio, rendezvous

    async def main():
        alice = await rendezvous.Client.connect("127.0.0.1:7420", user="alice", device="laptop")
        s = await alice.session_create("bob", topic="call")
        await alice.session_invite(s["session"])
        await alice.close()

    asyncio.run(main())
"""
from .client import Client, Closed, HistoryGone, RpcError, parse_address
from .types import (FINAL_STATES, ContextData, Event, Hello, Outcome, Presence, Record,
                    SessionList, State, Subscribed)

__all__ = ["Client", "Closed", "HistoryGone", "RpcError", "parse_address", "FINAL_STATES",
           "ContextData", "Event", "Hello", "Outcome", "Presence", "Record", "SessionList",
           "State", "Subscribed"]
__version__ = "0.1.0"
