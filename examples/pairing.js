// Pairing with the Node client: alice invites bob, bob accepts, both confirm their
// link, they exchange context data, alice hangs up.
//
//     node examples/pairing.js [HOST:PORT]
//
// (Installed with `npm install ./clients/node`, it is require('rendezvous-client').)
'use strict';
const { Client } = require('../clients/node');

async function main(address) {
  const alice = await Client.connect(address, { user: 'alice', device: 'laptop' });
  const bob = await Client.connect(address, { user: 'bob', device: 'phone' });
  await bob.subscribe({ user: 'bob' });            // bob hears of invitations to him
  const s = (await alice.sessionCreate('bob', { topic: 'screen sharing' })).session;
  await alice.sessionInvite(s);
  for await (const ev of bob.events()) {            // bob's phone rings
    console.log('bob sees', ev.state, 'from', ev.inviter);
    if (ev.session === s && ev.state === 'RSS_INVITATION') break;
  }
  await bob.sessionAccept(s);
  await alice.sessionConnect(s);
  const record = await bob.sessionConnect(s);      // both links up: RSS_CONNECTED
  console.log('session', s, record.state);
  await alice.sessionSend(s, { offer: 'v=0 ...' });
  for await (const msg of bob.contextData()) {
    console.log('bob got', JSON.stringify(msg.data), 'from', msg.from);
    break;
  }
  await bob.sessionSend(s, { answer: 'v=0 ...' });
  for await (const msg of alice.contextData()) {
    console.log('alice got', JSON.stringify(msg.data), 'from', msg.from);
    break;
  }
  const end = await alice.sessionTerminate(s, { code: 0 });
  console.log('session', s, end.state);
  alice.close();
  bob.close();
}

main(process.argv[2] || '127.0.0.1:7420').catch((e) => { console.error(e); process.exit(1); });
