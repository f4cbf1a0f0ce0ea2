// A client of rendezvousd, the invitation daemon (proto/PROTOCOL.md), on node:net and
// node:tls with newline framing; no dependencies. Node.js 18 or later.
//
// One connection at a time to one of several addresses, re-established when it drops,
// with every subscription resumed where it left off (PROTOCOL.md 5.2, "Resuming"):
// - events yields each session.state_changed once, in event-id order, across reconnects;
// - every change carries an idempotency key (generated unless given), so a call whose
//   reply was lost with its connection is sent again after the reconnect and done once;
// - outcomes yields each session's outcome once, until it is acknowledged (sessionAck).
// The same guarantees as the Python client (clients/python).
'use strict';

const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');

// Methods that change something: they carry an idempotency key (PROTOCOL.md 4.6).
const CHANGES = new Set(['session.create', 'session.invite', 'session.accept',
  'session.decline', 'session.cancel', 'session.connect', 'session.terminate',
  'session.send']);
// How many of the last event ids delivered are remembered, to drop one that comes again.
const RECENT = 65536;
const FINAL_STATES = new Set(['RSS_CANCELLED', 'RSS_DECLINED', 'RSS_TERMINATED']);

/** An error reply: code, message and data as the daemon sent them (PROTOCOL.md 6). */
class RpcError extends Error {
  constructor(error) {
    super(`${error.code}: ${error.message}`);
    this.name = 'RpcError';
    this.code = error.code;
    this.data = error.data;
  }
}

/** From events(): the events after the last one seen could not be recovered (4100). */
class HistoryGone extends Error {
  constructor(lastEvent) {
    super(`history gone: events up to ${lastEvent} were missed`);
    this.name = 'HistoryGone';
    this.lastEvent = lastEvent;
  }
}

/** The client was closed, or cannot go on (hello refused, kicked by an admin). */
class Closed extends Error {
  constructor(why) {
    super(why);
    this.name = 'Closed';
  }
}

class Lost extends Error {} // the connection a request went on is gone: send it again

/** {kind: 'tcp', host, port} or {kind: 'unix', path} from "host:port", "[v6]:port",
 * "unix:/path" or {host, port}. */
function parseAddress(a) {
  if (typeof a === 'object') return { kind: 'tcp', host: a.host, port: Number(a.port) };
  if (a.startsWith('unix:')) return { kind: 'unix', path: a.slice(5) };
  const i = a.lastIndexOf(':');
  const port = a.slice(i + 1);
  if (i < 0 || !/^[0-9]+$/.test(port)) throw new Error(`not HOST:PORT: ${a}`);
  let host = a.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { kind: 'tcp', host, port: Number(port) };
}

/** A queue read by an async iterator; an Error in it is thrown, a Closed ends it. */
class Queue {
  constructor() { this.items = []; this.waiters = []; }
  put(x) {
    const w = this.waiters.shift();
    if (w) w(x); else this.items.push(x);
  }
  get() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  async *iterate() {
    for (;;) {
      const x = await this.get();
      if (x instanceof Closed) { this.put(x); return; }
      if (x instanceof Error) throw x;
      yield x;
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

class Connection {
  constructor(socket, client) {
    this.socket = socket;
    this.inflight = new Map();
    this.buf = '';
    this.lost = false;
    this.done = new Promise((resolve) => { this.onDone = resolve; });
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.trim()) continue;
        let msg;
        try { msg = JSON.parse(line); } catch { this.lose(); return; }
        for (const m of Array.isArray(msg) ? msg : [msg]) client.dispatch(this, m);
      }
    });
    socket.on('close', () => this.lose());
    socket.on('error', () => this.lose());
  }

  send(msg) { this.socket.write(JSON.stringify(msg) + '\n'); }

  expect(id) {
    return new Promise((resolve, reject) => this.inflight.set(id, { resolve, reject }));
  }

  lose() {
    if (this.lost) return;
    this.lost = true;
    for (const { reject } of this.inflight.values()) reject(new Lost());
    this.inflight.clear();
    this.socket.destroy();
    this.onDone();
  }
}

class Client extends EventEmitter {
  /**
   * Connect to the first address that answers (each in turn, with back-off, for up to
   * timeout ms) and say hello. addresses: "HOST:PORT", "[V6]:PORT", "unix:/PATH",
   * {host, port}, an array of them, or "A:P,B:P,C:P". options: user or token, device,
   * client, tls (true, or node:tls connect options), timeout (ms, 10000), backoff
   * ([first, most] ms, [50, 5000]).
   */
  static async connect(addresses, options = {}) {
    const c = new Client(addresses, options);
    const first = new Promise((resolve, reject) => { c.first = { resolve, reject }; });
    c.run();
    try {
      await withTimeout(first, c.timeout, 'no address answered');
    } catch (e) {
      c.close();
      throw e instanceof Closed ? e
        : new Error(`no address answered in ${c.timeout} ms: ${c.lastError || e.message}`);
    }
    return c;
  }

  constructor(addresses, options = {}) {
    super();
    if (typeof addresses === 'string') addresses = addresses.split(',');
    else if (!Array.isArray(addresses)) addresses = [addresses];
    if (!addresses.length) throw new Error('no address');
    if (options.user == null && options.token == null) throw new Error('user or token is needed');
    this.addresses = addresses.map(parseAddress);
    this.user = options.user;
    this.token = options.token;
    this.device = options.device;
    this.clientName = options.client || 'rendezvous-node/0.1';
    this.tls = options.tls === true ? {} : options.tls || null;
    this.timeout = options.timeout || 10000;
    this.backoff = options.backoff || [50, 5000];
    this.lastEvent = 0; // the highest event id seen: resubscriptions start after it
    this.helloResult = null;
    this.address = null;
    this.reconnects = 0;
    this.conn = null;
    this.closed = null;
    this.nextId = 1;
    this.nextHandle = 1;
    // handle -> {target, id (the daemon's, now), floor, replayed, fresh}
    this.subs = new Map();
    this.recent = [];
    this.recentSet = new Set();
    this.outcomesSeen = new Set();
    this.queues = { events: new Queue(), outcomes: new Queue(), context: new Queue(),
      presence: new Queue() };
    this.readyWaiters = [];
  }

  // -- connecting -------------------------------------------------------------------------

  /** Close the connection and stop reconnecting; pending calls reject with Closed. */
  close() { this.fail(new Closed('closed')); }

  fail(why) {
    if (this.closed) return;
    this.closed = why;
    if (this.first) this.first.reject(why);
    if (this.conn) this.conn.lose();
    for (const w of this.readyWaiters.splice(0)) w();
    for (const q of Object.values(this.queues)) q.put(why);
  }

  open(addr) {
    return new Promise((resolve, reject) => {
      let socket;
      const opts = addr.kind === 'unix' ? { path: addr.path } : { host: addr.host, port: addr.port };
      const ok = () => {
        socket.setTimeout(0);
        socket.removeListener('error', reject);
        resolve(socket);
      };
      if (this.tls && addr.kind === 'tcp') {
        socket = tls.connect({ servername: net.isIP(addr.host) ? undefined : addr.host,
          ...opts, ...this.tls }, ok);
      } else {
        socket = net.connect(opts, ok);
      }
      socket.once('error', reject);
      // Not connected in time: give up on this address (the socket with it).
      socket.setTimeout(this.timeout, () => socket.destroy(new Error('connect: timeout')));
    });
  }

  async run() {
    let attempt = 0;
    let i = 0;
    while (!this.closed) {
      const addr = this.addresses[i % this.addresses.length];
      let conn = null;
      try {
        const socket = await this.open(addr);
        conn = new Connection(socket, this);
        this.address = addr;
        await withTimeout(this.handshake(conn), this.timeout, 'hello');
        this.conn = conn;
        if (this.first) { this.first.resolve(); this.first = null; }
        for (const w of this.readyWaiters.splice(0)) w();
        attempt = 0;
        await conn.done;
      } catch (e) {
        if (e instanceof Closed) { this.fail(e); break; }
        this.lastError = e;
      } finally {
        this.conn = null;
        if (conn) conn.lose();
      }
      if (this.closed) break;
      i++; // the next address
      if (attempt >= this.addresses.length) {
        // Every address failed in turn: back off, with jitter.
        const [low, high] = this.backoff;
        const delay = Math.min(high, low * 2 ** (attempt - this.addresses.length));
        await sleep(delay * (0.5 + Math.random() / 2));
      }
      attempt++;
    }
  }

  async handshake(conn) {
    const params = { client: this.clientName };
    if (this.token != null) params.token = this.token;
    if (this.user != null) params.user = this.user;
    if (this.device != null) params.device = this.device;
    const reply = await this.raw(conn, 'hello', params);
    if (reply.error) {
      const e = new RpcError(reply.error);
      if ([4001, 4003, 4029, -32602].includes(e.code)) throw new Closed(`hello refused: ${e.message}`);
      throw e;
    }
    this.helloResult = reply.result;
    if (!this.first) this.reconnects++; // before the resume, whose replays may come first
    // The device the daemon named, if none was given: the same one after reconnects.
    this.device = reply.result.device;
    await this.resume(conn);
  }

  /** Every subscription again, in one batch, each from the last event seen (or its own
   * since, if its replay was not read whole). */
  async resume(conn) {
    if (!this.subs.size) return;
    const handles = [...this.subs.keys()];
    const batch = [];
    const waits = [];
    for (const h of handles) {
      const sub = this.subs.get(h);
      const params = { ...sub.target };
      if (!('presence' in params) && !sub.fresh) {
        params.since = sub.replayed ? Math.max(this.lastEvent, sub.floor) : sub.floor;
      }
      const id = this.nextId++;
      waits.push(conn.expect(id));
      batch.push({ jsonrpc: '2.0', method: 'subscribe', params, id });
    }
    conn.send(batch);
    let gone = null;
    for (let k = 0; k < handles.length; k++) {
      const sub = this.subs.get(handles[k]);
      let reply = await waits[k];
      if (reply.error && [4100, -32602].includes(reply.error.code) && 'since' in batch[k].params) {
        // Older than the history, or newer than the daemon has (it lost events).
        gone = (reply.error.data || {}).last_event;
        reply = await this.raw(conn, 'subscribe', { ...sub.target });
        sub.fresh = true;
      }
      if (reply.error) throw new RpcError(reply.error);
      sub.id = reply.result.subscription;
      if (sub.fresh) { sub.floor = reply.result.last_event; sub.fresh = false; }
    }
    // Replies come in order, after the replays they cause.
    const pong = await this.raw(conn, 'ping');
    if (pong.error) throw new RpcError(pong.error);
    for (const sub of this.subs.values()) sub.replayed = true;
    if (gone !== null) this.queues.events.put(new HistoryGone(gone));
  }

  // -- the wire ---------------------------------------------------------------------------

  raw(conn, method, params) {
    const id = this.nextId++;
    const p = conn.expect(id);
    const msg = { jsonrpc: '2.0', method, id };
    if (params !== undefined) msg.params = params;
    conn.send(msg);
    return p;
  }

  dispatch(conn, m) {
    if (m.method !== undefined && m.id === undefined) {
      this.notification(m.method, m.params || {});
      return;
    }
    if (m.id === null && m.error) {
      if (m.error.code === 4100) { // the store lost events: start afresh
        this.queues.events.put(new HistoryGone((m.error.data || {}).last_event));
        this.lastEvent = 0;
        this.recent = [];
        this.recentSet.clear();
        for (const sub of this.subs.values()) sub.fresh = true;
      } else if (m.error.code === 4003) { // disconnected by an admin: do not come back
        this.fail(new Closed(`disconnected: ${m.error.message}`));
      }
      return; // the connection closes; reconnecting follows
    }
    const w = conn.inflight.get(m.id);
    if (w) { conn.inflight.delete(m.id); w.resolve(m); }
  }

  notification(method, params) {
    if (method === 'session.state_changed') {
      const id = params.event;
      if (this.recentSet.has(id)) return; // delivered before a reconnect
      this.recent.push(id);
      this.recentSet.add(id);
      if (this.recent.length > RECENT) this.recentSet.delete(this.recent.shift());
      this.lastEvent = Math.max(this.lastEvent, id);
      this.queues.events.put(params);
    } else if (method === 'session.outcome') {
      if (this.outcomesSeen.has(params.session)) return;
      this.outcomesSeen.add(params.session);
      this.queues.outcomes.put(params);
    } else if (method === 'session.context_data') {
      this.queues.context.put(params);
    } else if (method === 'presence.changed') {
      this.queues.presence.put(params);
    }
    this.emit('notification', method, params);
  }

  async connection(deadline) {
    for (;;) {
      if (this.closed) throw new Closed(this.closed.message);
      if (this.conn && !this.conn.lost) return this.conn;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout: not connected');
      await withTimeout(new Promise((resolve) => this.readyWaiters.push(resolve)), left,
        'not connected');
    }
  }

  /**
   * Any protocol method: its result, or RpcError. A change gets an idempotency key unless
   * params has one. Sent again on the next connection if its connection drops before the
   * reply, and after retry_after_ms on 5003, until timeout ms have passed.
   */
  async call(method, params) {
    if (CHANGES.has(method)) {
      params = { ...params };
      if (params.idempotency_key === undefined) params.idempotency_key = crypto.randomBytes(16).toString('hex');
    }
    const deadline = Date.now() + this.timeout;
    for (;;) {
      const conn = await this.connection(deadline);
      let reply;
      try {
        reply = await withTimeout(this.raw(conn, method, params), Math.max(1, deadline - Date.now()), method);
      } catch (e) {
        if (e instanceof Lost) continue;
        throw e;
      }
      if (reply.error) {
        const retry = (reply.error.data || {}).retry_after_ms;
        if (reply.error.code === 5003 && retry !== undefined && Date.now() < deadline) {
          await sleep(Math.min(retry, deadline - Date.now()));
          continue;
        }
        throw new RpcError(reply.error);
      }
      return reply.result;
    }
  }

  // -- iterators --------------------------------------------------------------------------

  /** session.state_changed params: each event once, in order, across reconnects. Throws
   * HistoryGone when some could not be recovered; iterate again to go on. */
  events() { return this.queues.events.iterate(); }

  /** session.outcome params, each session once until acknowledged with sessionAck. */
  outcomes() { return this.queues.outcomes.iterate(); }

  /** session.context_data params: what the other party sent with sessionSend. */
  contextData() { return this.queues.context.iterate(); }

  /** presence.changed params of subscribe({presence}) subscriptions. */
  presence() { return this.queues.presence.iterate(); }

  // -- the protocol's methods -------------------------------------------------------------

  ping() { return this.call('ping'); }

  sessionCreate(invitee, opts = {}) { return this.call('session.create', clean({ invitee, ...opts })); }

  sessionInvite(session, opts = {}) { return this.call('session.invite', clean({ session, ...opts })); }

  sessionAccept(session, opts = {}) { return this.call('session.accept', clean({ session, ...opts })); }

  sessionDecline(session, opts = {}) { return this.call('session.decline', clean({ session, ...opts })); }

  sessionCancel(session, opts = {}) { return this.call('session.cancel', clean({ session, ...opts })); }

  sessionConnect(session, opts = {}) { return this.call('session.connect', clean({ session, ...opts })); }

  sessionTerminate(session, opts = {}) { return this.call('session.terminate', clean({ session, ...opts })); }

  /** Context data to the other party's engaged device; how many connections took it. */
  async sessionSend(session, data, opts = {}) {
    return (await this.call('session.send', { ...clean({ session, ...opts }), data })).delivered;
  }

  sessionGet(session) { return this.call('session.get', { session }); }

  sessionList(opts = {}) { return this.call('session.list', clean(opts)); }

  /** Acknowledge outcomes: they are not sent again. How many were pending. */
  async sessionAck(sessions) {
    const n = (await this.call('session.ack', { sessions })).acked;
    for (const s of sessions) this.outcomesSeen.delete(s);
    return n;
  }

  async sessionOutcomes() { return (await this.call('session.outcomes')).outcomes; }

  /**
   * Follow {session}, {user}, {all: true} or {presence}; since replays what came after
   * it. The result's subscription is this client's handle for unsubscribe, valid across
   * reconnects.
   */
  async subscribe(target) {
    const { since, ...rest } = target;
    const t = clean(rest);
    const params = since === undefined ? { ...t } : { ...t, since };
    const result = { ...(await this.call('subscribe', params)) };
    const handle = this.nextHandle++;
    const sub = { target: t, id: result.subscription, fresh: false,
      floor: since === undefined ? result.last_event : since, replayed: since === undefined };
    this.subs.set(handle, sub);
    if (since !== undefined) {
      try { await this.call('ping'); sub.replayed = true; } catch { /* resumed from since */ }
    }
    result.subscription = handle;
    return result;
  }

  async unsubscribe(subscription) {
    const sub = this.subs.get(subscription);
    if (!sub) throw new RpcError({ code: -32602, message: 'invalid params: no such subscription' });
    this.subs.delete(subscription);
    try {
      return await this.call('unsubscribe', { subscription: sub.id });
    } catch (e) {
      if (e instanceof RpcError && e.code === -32602) return true; // made on a connection since gone
      throw e;
    }
  }

  presenceGet(user) { return this.call('presence.get', { user }); }

  adminStats() { return this.call('admin.stats'); }

  adminConnections(opts = {}) { return this.call('admin.connections', clean(opts)); }

  async adminKick(target) { return (await this.call('admin.kick', clean(target))).kicked; }
}

function clean(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) {
    const key = k === 'idempotencyKey' ? 'idempotency_key' : k;
    if (v !== undefined && v !== null) out[key] = v;
  }
  return out;
}

module.exports = { Client, RpcError, HistoryGone, Closed, parseAddress, FINAL_STATES };
