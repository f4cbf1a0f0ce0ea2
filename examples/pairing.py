#!/usr/bin/env python3
"""Pairing with the Python client: alice invites bob, bob accepts, both confirm their
link, they exchange context data, alice hangs up.

    PYTHONPATH=clients/python python3 examples/pairing.py [HOST:PORT]
"""
import asyncio
import sys

import rendezvous


async def main(address):
    alice = await rendezvous.Client.connect(address, user="alice", device="laptop")
    bob = await rendezvous.Client.connect(address, user="bob", device="phone")
    await bob.subscribe(user="bob")                  # bob hears of invitations to him
    s = (await alice.session_create("bob", topic="screen sharing"))["session"]
    await alice.session_invite(s)
    async for ev in bob.events():                   # bob's phone rings
        print("bob sees", ev["state"], "from", ev["inviter"])
        if ev["session"] == s and ev["state"] == "RSS_INVITATION":
            break
    await bob.session_accept(s)
    await alice.session_connect(s)
    record = await bob.session_connect(s)           # both links up: RSS_CONNECTED
    print("session", s, record["state"])
    await alice.session_send(s, {"offer": "v=0 ..."})
    async for msg in bob.context_data():
        print("bob got", msg["data"], "from", msg["from"])
        break
    await bob.session_send(s, {"answer": "v=0 ..."})
    async for msg in alice.context_data():
        print("alice got", msg["data"], "from", msg["from"])
        break
    record = await alice.session_terminate(s, code=0)
    print("session", s, record["state"])
    await asyncio.gather(alice.close(), bob.close())


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7420"))
