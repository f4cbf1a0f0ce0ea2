// The Node client against the real daemon (RENDEZVOUSD; started here on loopback ports,
// stopped by pid): the whole flow, its types against proto/schema/, reconnecting across a
// daemon restart and a daemon killed between a request and its reply, a reply lost with
// its connection, outcomes once, and failing over between two nodes of one Redis.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Client, RpcError, Closed } = require('..');

const ROOT = process.env.RV_SOURCE_ROOT || path.join(__dirname, '..', '..', '..');
const DAEMON = process.env.RENDEZVOUSD || path.join(ROOT, 'build', 'daemon', 'rendezvousd');
const TIMEOUT = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timeout: ${what}`);
    await sleep(20);
  }
}

/** rendezvousd on 127.0.0.1 (port 0: one of the kernel's), its store in stateDir. */
async function daemon(args = [], { port = 0, stateDir } = {}) {
  stateDir = stateDir || fs.mkdtempSync(path.join(os.tmpdir(), 'rv-node-state-'));
  const log = path.join(stateDir, `log-${Date.now()}-${Math.random()}`);
  const out = fs.openSync(log, 'w');
  const proc = spawn(DAEMON, ['--config', '/dev/null', '--listen', `127.0.0.1:${port}`,
    '--state-dir', stateDir, ...args], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const m = await waitFor('the daemon to start', () => {
    const text = fs.readFileSync(log, 'utf8');
    if (proc.exitCode !== null) throw new Error(`rendezvousd exited:\n${text}`);
    const p = /listening on 127\.0\.0\.1:(\d+)\n/.exec(text);
    return p && /rendezvousd \S+ ready/.test(text) ? p : null;
  });
  return {
    proc, port: Number(m[1]), stateDir,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
    async kill() { await this.stop('SIGKILL'); },
    removeState() { fs.rmSync(stateDir, { recursive: true, force: true }); },
  };
}

async function redis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rv-node-redis-'));
  const port = await freePort();
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
    '--save', '', '--logfile', path.join(dir, 'redis.log')], { stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  await waitFor('redis-server to start', () => fs.existsSync(path.join(dir, 'redis.log')) &&
    /Ready to accept connections/.test(fs.readFileSync(path.join(dir, 'redis.log'), 'utf8')));
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() { proc.kill('SIGTERM'); await exited; fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A TCP relay to the daemon that can lose the daemon's next reply (and the connection
 * with it), or cut every connection. */
async function proxy(toPort) {
  const pairs = new Set();
  const p = { lose: false };
  const server = net.createServer((c) => {
    const u = net.connect(toPort, '127.0.0.1');
    const pair = [c, u];
    pairs.add(pair);
    const end = () => { c.destroy(); u.destroy(); pairs.delete(pair); };
    c.on('data', (d) => u.write(d));
    u.on('data', (d) => {
      if (p.lose) { p.lose = false; end(); return; }
      c.write(d);
    });
    c.on('close', end); u.on('close', end);
    c.on('error', end); u.on('error', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.port = server.address().port;
  p.cut = () => { for (const [c, u] of pairs) { c.destroy(); u.destroy(); } pairs.clear(); };
  p.close = () => { p.cut(); return new Promise((resolve) => server.close(resolve)); };
  return p;
}

/** The next n items of an async iterable, within ms. */
async function take(iterable, n, ms = TIMEOUT) {
  const out = [];
  const it = iterable[Symbol.asyncIterator]();
  const end = Date.now() + ms;
  while (out.length < n) {
    const left = end - Date.now();
    let timer;
    const r = await Promise.race([it.next(), new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), Math.max(left, 1));
    })]).finally(() => clearTimeout(timer));
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** A daemon and clients for one test, stopped and closed after it. */
async function setup(t, args = ['--observer', 'olga']) {
  const env = { d: await daemon(args), clients: [] };
  env.client = async (user, opts = {}, port = env.d.port) => {
    const c = await Client.connect(`127.0.0.1:${port}`, { user, timeout: TIMEOUT, ...opts });
    env.clients.push(c);
    return c;
  };
  env.restart = async ({ kill }) => {
    const { port, stateDir } = env.d;
    await (kill ? env.d.kill() : env.d.stop());
    env.d = await daemon(args, { port, stateDir });
  };
  t.after(async () => {
    for (const c of env.clients) c.close();
    await env.d.stop();
    env.d.removeState();
  });
  return env;
}

test('an invitation from create to terminate', async (t) => {
  const env = await setup(t);
  const alice = await env.client('alice', { device: 'laptop' });
  const bob = await env.client('bob', { device: 'phone' });
  assert.equal(bob.helloResult.user, 'bob');
  assert.equal(await alice.ping(), 'pong');
  const sub = await bob.subscribe({ user: 'bob' });
  assert.equal(sub.subscription, 1);
  const s = (await alice.sessionCreate('bob', { topic: 'call', data: { x: 1 } })).session;
  await alice.sessionInvite(s);
  const [ev] = await take(bob.events(), 1);
  assert.deepEqual([ev.session, ev.state], [s, 'RSS_INVITATION']);
  await bob.sessionAccept(s);
  await alice.sessionConnect(s);
  assert.equal((await bob.sessionConnect(s)).state, 'RSS_CONNECTED');
  assert.equal(await alice.sessionSend(s, { sdp: 'offer' }), 1);
  const [cd] = await take(bob.contextData(), 1);
  assert.deepEqual([cd.from, cd.data], ['alice', { sdp: 'offer' }]);
  const rec = await alice.sessionTerminate(s, { code: 7, data: { bye: true } });
  assert.deepEqual([rec.state, rec.code], ['RSS_TERMINATED', 7]);
  const evs = await take(bob.events(), 3);
  assert.deepEqual(evs.map((e) => [e.event, e.state]),
    [[3, 'RSS_ACCEPTED'], [4, 'RSS_CONNECTED'], [5, 'RSS_TERMINATED']]);
  assert.deepEqual((await alice.sessionList()).sessions.map((r) => r.session), [s]);
  await assert.rejects(bob.sessionGet('0'.repeat(32)), (e) => e instanceof RpcError && e.code === 4004);
});

test('every change carries a key', async (t) => {
  const env = await setup(t);
  const alice = await env.client('alice');
  const a = await alice.sessionCreate('bob', { idempotency_key: 'retry-me' });
  const b = await alice.sessionCreate('bob', { idempotency_key: 'retry-me' });
  assert.equal(a.session, b.session);
  const c = await alice.sessionCreate('bob');
  assert.notEqual(a.session, c.session);
});

test('several addresses, the first dead', async (t) => {
  const env = await setup(t);
  const dead = await freePort();
  const c = await Client.connect(`127.0.0.1:${dead},127.0.0.1:${env.d.port}`,
    { user: 'alice', timeout: TIMEOUT });
  env.clients.push(c);
  assert.equal(c.address.port, env.d.port);
  assert.equal(await c.ping(), 'pong');
});

test('a refused hello is final', async (t) => {
  const env = await setup(t);
  await assert.rejects(Client.connect(`127.0.0.1:${env.d.port}`,
    { user: 'bad\nname', timeout: TIMEOUT }), Closed);
});

test('tls: the daemon verified against a CA', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rv-node-tls-'));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'other']) {
    openssl('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2',
      '-subj', `/CN=test ${ca}`);
  }
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'san'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san');
  const d = await daemon(['--listen-tls', '127.0.0.1:0', '--tls-cert', path.join(dir, 'server.pem'),
    '--tls-key', path.join(dir, 'server.key')]);
  t.after(async () => { await d.stop(); d.removeState(); fs.rmSync(dir, { recursive: true, force: true }); });
  const text = fs.readdirSync(d.stateDir).filter((f) => f.startsWith('log-'))
    .map((f) => fs.readFileSync(path.join(d.stateDir, f), 'utf8')).join('');
  const tlsPort = Number(/listening on 127\.0\.0\.1:(\d+) \(TLS\)/.exec(text)[1]);
  const c = await Client.connect(`127.0.0.1:${tlsPort}`, { user: 'alice', timeout: TIMEOUT,
    tls: { ca: fs.readFileSync(path.join(dir, 'ca.pem')) } });
  assert.equal(await c.ping(), 'pong');
  c.close();
  await assert.rejects(Client.connect(`127.0.0.1:${tlsPort}`, { user: 'alice', timeout: 2000,
    tls: { ca: fs.readFileSync(path.join(dir, 'other.pem')) } }), /certificate/);
});

test('the types match the schema', () => {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'proto', 'schema',
    'rendezvous.schema.json'), 'utf8')).$defs;
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
  const interfaces = {};
  for (const m of dts.matchAll(/export interface (\w+) \{([^}]*)\}/g)) {
    interfaces[m[1]] = [...m[2].matchAll(/^\s*(\w+)(\?)?:/gm)].map((f) => [f[1], !f[2]]);
  }
  const pairs = { Record: 'record', Outcome: 'outcome', Presence: 'presence',
    Event: 'notification.session.state_changed', ContextData: 'notification.session.context_data',
    Hello: 'result.hello', Subscribed: 'result.subscribe', SessionList: 'result.session.list' };
  for (const [name, def] of Object.entries(pairs)) {
    const fields = interfaces[name];
    assert.ok(fields, name);
    assert.deepEqual(fields.map((f) => f[0]).sort(), Object.keys(schema[def].properties).sort(), name);
    assert.deepEqual(fields.filter((f) => f[1]).map((f) => f[0]).sort(),
      [...(schema[def].required || [])].sort(), name);
  }
  const states = /export type State = ([^;]*);/.exec(dts)[1].match(/'(\w+)'/g).map((s) => s.slice(1, -1));
  assert.deepEqual(states, schema.state.enum);
});

test('a method for every protocol method', () => {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'proto', 'schema',
    'rendezvous.schema.json'), 'utf8')).$defs;
  for (const k of Object.keys(schema).filter((k) => k.startsWith('params.'))) {
    const m = k.slice('params.'.length);
    if (m === 'hello') continue; // said by connect(), on every connection
    const name = m.replace(/\.(\w)/g, (_, c) => c.toUpperCase()).replace(/_(\w)/g, (_, c) => c.toUpperCase());
    assert.equal(typeof Client.prototype[name], 'function', `${m}: ${name}`);
  }
});

test('a daemon restart: no gap, no duplicate', async (t) => {
  const env = await setup(t);
  const olga = await env.client('olga', { backoff: [4000, 4000] });
  await olga.subscribe({ all: true });
  const alice = await env.client('alice', { device: 'laptop' });
  const s = (await alice.sessionCreate('bob')).session;
  await alice.sessionInvite(s);
  await env.restart({ kill: true });
  // A change made before olga is back (she waits 2-4 s between tries) reaches her
  // as a replay of what came after the last event she saw.
  const bob = await env.client('bob');
  await bob.sessionAccept(s);
  bob.close();
  await alice.sessionCancel(s);
  const evs = await take(olga.events(), 4);
  assert.deepEqual(evs.map((e) => [e.event, e.state]), [[1, 'RSS_READY'], [2, 'RSS_INVITATION'],
    [3, 'RSS_ACCEPTED'], [4, 'RSS_CANCELLED']]);
  assert.equal(evs[2].replay, true);
  assert.ok(olga.reconnects >= 1);
  await alice.sessionCreate('carol');
  assert.deepEqual((await take(olga.events(), 1)).map((e) => e.event), [5]);
});

test('the daemon killed between a request and its reply', async (t) => {
  const env = await setup(t);
  const alice = await env.client('alice', { device: 'laptop' });
  env.d.proc.kill('SIGSTOP');
  const create = alice.sessionCreate('bob');
  await sleep(300); // sent, not answered
  env.d.proc.kill('SIGCONT');
  await env.restart({ kill: true });
  const rec = await create;
  assert.deepEqual((await alice.sessionList()).sessions.map((r) => r.session), [rec.session]);
});

test('a reply lost with its connection', async (t) => {
  const env = await setup(t);
  const p = await proxy(env.d.port);
  t.after(() => p.close());
  const alice = await env.client('alice', { device: 'laptop' }, p.port);
  p.lose = true; // the daemon does it; the reply never comes back
  const rec = await alice.sessionCreate('bob');
  assert.ok(alice.reconnects >= 1);
  assert.deepEqual((await alice.sessionList()).sessions.map((r) => r.session), [rec.session]);
  const bob = await env.client('bob', { device: 'phone' });
  await alice.sessionInvite(rec.session);
  await bob.sessionAccept(rec.session);
  p.lose = true;
  assert.equal(await alice.sessionSend(rec.session, 'hi'), 1);
  const it = bob.contextData();
  assert.deepEqual((await take(it, 1)).map((c) => c.data), ['hi']);
  await assert.rejects(take(it, 1, 500), /timeout/); // once
});

test('outcomes once until acknowledged', async (t) => {
  const env = await setup(t);
  const p = await proxy(env.d.port);
  t.after(() => p.close());
  const tablet = await env.client('bob', { device: 'tablet' }, p.port);
  const alice = await env.client('alice', { device: 'laptop' });
  const s = (await alice.sessionCreate('bob')).session;
  await alice.sessionInvite(s);
  await alice.sessionCancel(s, { reason: 'later' });
  for (let i = 0; i < 2; i++) { // each reconnect's hello brings it again; yielded once
    p.cut();
    await tablet.ping();
  }
  const it = tablet.outcomes();
  const [o] = await take(it, 1);
  assert.deepEqual([o.session, o.state, o.reason], [s, 'RSS_CANCELLED', 'later']);
  await assert.rejects(take(it, 1, 500), /timeout/);
  assert.equal(await tablet.sessionAck([s]), 1);
  assert.deepEqual(await tablet.sessionOutcomes(), []);
});

test('a node killed: the client goes on at the next', async (t) => {
  const r = await redis();
  const a = await daemon(['--store', r.url, '--observer', 'olga']);
  const b = await daemon(['--store', r.url, '--observer', 'olga']);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await a.stop(); await b.stop();
    a.removeState(); b.removeState();
    await r.stop();
  });
  const olga = await Client.connect([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    { user: 'olga', timeout: TIMEOUT });
  clients.push(olga);
  await olga.subscribe({ all: true });
  const alice = await Client.connect(`127.0.0.1:${b.port}`, { user: 'alice', timeout: TIMEOUT });
  clients.push(alice);
  const s = (await alice.sessionCreate('bob')).session;
  assert.deepEqual((await take(olga.events(), 1)).map((e) => e.event), [1]);
  await a.kill();
  await alice.sessionInvite(s);
  await alice.sessionCancel(s);
  assert.deepEqual((await take(olga.events(), 2)).map((e) => [e.event, e.state]),
    [[2, 'RSS_INVITATION'], [3, 'RSS_CANCELLED']]);
  await olga.ping();
  assert.equal(olga.address.port, b.port);
  assert.equal(olga.reconnects, 1);
});
