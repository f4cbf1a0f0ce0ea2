// Types of rendezvous-client (index.js). The interfaces below are checked against
// proto/schema/rendezvous.schema.json by test/client.test.js: the same fields, the same
// ones optional.
import { EventEmitter } from 'node:events';
import { ConnectionOptions } from 'node:tls';

export type State = 'RSS_UNKNOWN' | 'RSS_READY' | 'RSS_INVITATION' | 'RSS_ACCEPTED' |
  'RSS_CONNECTED' | 'RSS_CANCELLED' | 'RSS_DECLINED' | 'RSS_TERMINATED';

export const FINAL_STATES: Set<State>;

export interface Confirmed {
  inviter: boolean;
  invitee: boolean;
}

/** A session record (PROTOCOL.md 5.1). */
export interface Record {
  session: string;
  state: State;
  inviter: string;
  invitee: string;
  remote_user: string | null;
  flags: number;
  created: number;
  updated: number;
  expires: number;
  event: number;
  topic: string;
  inviter_device: string;
  answered_by: string | null;
  by_device: string | null;
  confirmed?: Confirmed;
  reason?: string;
  replaced_by?: string;
  code?: number;
  data?: unknown;
  app_data?: unknown;
}

/** The params of session.state_changed (PROTOCOL.md 5.2). */
export interface Event {
  session: string;
  prev: State;
  state: State;
  event: number;
  time: number;
  by: string | null;
  by_device: string | null;
  inviter: string;
  invitee: string;
  topic: string;
  reason?: string;
  replaced_by?: string;
  code?: number;
  data?: unknown;
  replay?: boolean;
}

/** The params of session.outcome (PROTOCOL.md 4.8). */
export interface Outcome {
  session: string;
  state: State;
  by: string | null;
  by_device: string | null;
  event: number;
  time: number;
  topic: string;
  reason?: string;
  code?: number;
  data?: unknown;
  replaced_by?: string;
}

/** The params of session.context_data. */
export interface ContextData {
  session: string;
  from: string;
  data: unknown;
}

/** presence.get's result and presence.changed's params (PROTOCOL.md 4.7). */
export interface Presence {
  user: string;
  online: boolean;
  devices: string[];
}

/** The result of hello. */
export interface Hello {
  user: string;
  device: string;
  observer: boolean;
  admin: boolean;
  server: string;
  version: string;
  connection: number;
  last_event: number;
  outcomes_dropped?: number;
}

/** The result of subscribe; subscription is the client's handle for unsubscribe. */
export interface Subscribed {
  subscription: number;
  last_event: number;
  presence?: Presence;
}

export interface SessionList {
  sessions: Record[];
  next?: string;
}

export type Address = string | { host: string; port: number };

export interface ClientOptions {
  user?: string;
  token?: string;
  device?: string;
  client?: string;
  tls?: true | ConnectionOptions;
  /** ms, for connecting and for each call (10000) */
  timeout?: number;
  /** [first, most] ms between rounds of failed attempts ([50, 5000]) */
  backoff?: [number, number];
}

export interface ChangeOptions {
  idempotency_key?: string;
}

export class RpcError extends Error {
  code: number;
  data?: unknown;
}
export class HistoryGone extends Error {
  lastEvent: number | undefined;
}
export class Closed extends Error {}

export function parseAddress(a: Address):
  { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export class Client extends EventEmitter {
  static connect(addresses: Address | Address[], options: ClientOptions): Promise<Client>;
  readonly helloResult: Hello | null;
  readonly device: string | undefined;
  readonly lastEvent: number;
  readonly reconnects: number;
  readonly address: ReturnType<typeof parseAddress> | null;
  close(): void;
  call(method: string, params?: object): Promise<any>;
  events(): AsyncIterable<Event>;
  outcomes(): AsyncIterable<Outcome>;
  contextData(): AsyncIterable<ContextData>;
  presence(): AsyncIterable<Presence>;
  ping(): Promise<'pong'>;
  sessionCreate(invitee: string, opts?: ChangeOptions & { ttl?: number; data?: unknown; topic?: string }): Promise<Record>;
  sessionInvite(session: string, opts?: ChangeOptions): Promise<Record>;
  sessionAccept(session: string, opts?: ChangeOptions): Promise<Record>;
  sessionDecline(session: string, opts?: ChangeOptions & { reason?: string }): Promise<Record>;
  sessionCancel(session: string, opts?: ChangeOptions & { reason?: string }): Promise<Record>;
  sessionConnect(session: string, opts?: ChangeOptions): Promise<Record>;
  sessionTerminate(session: string, opts?: ChangeOptions & { code?: number; data?: unknown }): Promise<Record>;
  sessionSend(session: string, data: unknown, opts?: ChangeOptions): Promise<number>;
  sessionGet(session: string): Promise<Record>;
  sessionList(opts?: { state?: State; limit?: number; after?: string; all?: boolean }): Promise<SessionList>;
  sessionAck(sessions: string[]): Promise<number>;
  sessionOutcomes(): Promise<Outcome[]>;
  subscribe(target: ({ session: string } | { user: string } | { all: true } | { presence: string }) & { since?: number }): Promise<Subscribed>;
  unsubscribe(subscription: number): Promise<boolean>;
  presenceGet(user: string): Promise<Presence>;
  adminStats(): Promise<object>;
  adminConnections(opts?: { limit?: number; after?: number; user?: string }): Promise<{ connections: object[]; next?: number }>;
  adminKick(target: { connection: number } | { user: string }): Promise<number>;
}
