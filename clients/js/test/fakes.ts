// Test doubles: scripted WebSocket servers and an HTTP fake, so that the Client's reliability
// logic runs in one process with no network.
import type { SocketFactory, WebSocketLike } from "../src/connection.js";

export type Frame = { type: string; [key: string]: unknown };

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Frame[] = [];

  constructor(
    readonly url: string,
    private readonly server: FakeServer,
  ) {}

  send(data: string): void {
    const frame = JSON.parse(data) as Frame;
    this.sent.push(frame);
    queueMicrotask(() => this.server.handle(this, frame));
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }

  // the server's side
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(frame: object): void {
    if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code: number, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** A server side for one service: `handler` answers each frame; sockets open at once unless
 * `refuse` says to close them with a code instead. */
export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  refuse: number | undefined;

  constructor(public handler: (socket: FakeSocket, frame: Frame) => void) {}

  readonly factory: SocketFactory = (url) => {
    const socket = new FakeSocket(url, this);
    this.sockets.push(socket);
    setTimeout(() => (this.refuse === undefined ? socket.accept() : socket.drop(this.refuse)), 1);
    return socket;
  };

  handle(socket: FakeSocket, frame: Frame): void {
    this.handler(socket, frame);
  }

  get last(): FakeSocket {
    return this.sockets[this.sockets.length - 1]!;
  }

  /** Every frame of `type` written on any socket, in order. */
  frames(type: string): Frame[] {
    return this.sockets.flatMap((s) => s.sent.filter((f) => f.type === type));
  }
}

/** A producer that acks every send (a resent id: `duplicate: true`), unless `hold` is set; a
 * `"wait":"stored"` send's ack carries its `seq` (one more per conversation, as stored). A
 * `read` is answered `read_ok` unless `holdReads` is set. `accept(frame)` stores a send and
 * returns its ack without sending it (an ack lost, or not sent yet). */
export type FakeProducer = FakeServer & { stored: string[]; accept: (frame: Frame) => Frame };

export function producer(options: { hold?: () => boolean; holdReads?: () => boolean } = {}): FakeProducer {
  const stored: string[] = [];
  const seqs = new Map<string, number>();
  const accept = (frame: Frame): Frame => {
    const id = frame.client_msg_id as string;
    const conversation = frame.conversation_id as string;
    const duplicate = stored.includes(id);
    if (!duplicate) {
      stored.push(id);
      seqs.set(conversation, (seqs.get(conversation) ?? 0) + 1);
      seqs.set(`${conversation} ${id}`, seqs.get(conversation)!);
    }
    return {
      type: "ack",
      client_msg_id: id,
      message_id: `m-${stored.indexOf(id)}`,
      stream_seq: stored.indexOf(id) + 1,
      duplicate,
      accepted_at: "2026-12-04T00:00:00.000Z",
      ...(frame.wait === "stored" ? { seq: seqs.get(`${conversation} ${id}`) } : {}),
    };
  };
  const server = new FakeServer((socket, frame) => {
    if (frame.type === "auth") socket.push({ type: "auth_ok", exp: 0 });
    if (frame.type === "read" && !options.holdReads?.()) {
      socket.push({ type: "read_ok", conversation_id: frame.conversation_id, seq: frame.seq });
    }
    if (frame.type === "send" && !options.hold?.()) socket.push(accept(frame));
  }) as FakeProducer;
  server.stored = stored;
  server.accept = accept;
  return server;
}

/** The cursors a consumer socket was opened with (`?cursors=<id>:<seq>,...`), as the `resume`
 * frame they stand for; undefined without the parameter. */
export function queryResume(socket: FakeSocket): Frame | undefined {
  const value = new URL(socket.url).searchParams.get("cursors");
  if (value === null) return undefined;
  const cursors: Record<string, number> = {};
  for (const pair of value.split(",").filter(Boolean)) {
    const [id, seq] = pair.split(":");
    cursors[id!] = Number(seq);
  }
  return { type: "resume", cursors };
}

/** A consumer that says `ready` after `auth` and calls `onResume` for each resume: the one of
 * the connection's `?cursors=` (right after `ready`, as the server does), then each frame. */
export function consumer(onResume: (socket: FakeSocket, frame: Frame) => void = () => undefined): FakeServer {
  return new FakeServer((socket, frame) => {
    if (frame.type === "auth") {
      socket.push({ type: "auth_ok", exp: 0 });
      socket.push({ type: "ready", user_id: USER, server_time: "2026-12-04T00:00:00.000Z" });
      const given = queryResume(socket);
      if (given) onResume(socket, given);
    }
    if (frame.type === "resume") onResume(socket, frame);
  });
}

export const USER = "0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e2f";
export const CONV = "0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f";

export function jwt(claims: Record<string, unknown>): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "EdDSA", typ: "at+jwt" })}.${part(claims)}.sig`;
}

export function token(seconds = 900, sub = USER): string {
  return jwt({ sub, exp: Math.floor(Date.now() / 1000) + seconds, n: Math.random() });
}

export function message(seq: number, conversationId = CONV): Frame {
  return {
    type: "message",
    message_id: `m${seq}`,
    conversation_id: conversationId,
    seq,
    sender_id: USER,
    body: `body ${seq}`,
    client_msg_id: `c${seq}`,
    sent_at: "2026-12-04T00:00:00.000Z",
  };
}

export type Route = (url: URL, init: RequestInit | undefined) => { status: number; body?: unknown } | undefined;

/** fetch over a list of routes; records every call. */
export function fakeFetch(routes: Route[]): typeof fetch & { calls: string[] } {
  const calls: string[] = [];
  const fn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    calls.push(`${init?.method ?? "GET"} ${url.pathname}${url.search}`);
    for (const route of routes) {
      const answer = route(url, init);
      if (answer) {
        return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
          status: answer.status,
          headers: { "content-type": "application/json" },
        });
      }
    }
    return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), { status: 404 });
  }) as typeof fetch & { calls: string[] };
  fn.calls = calls;
  return fn;
}

export async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const URLS = { authUrl: "http://auth.test", producerUrl: "http://producer.test", consumerUrl: "http://consumer.test" };
