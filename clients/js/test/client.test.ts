import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import "fake-indexeddb/auto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONNECTED_MARKER, Client, IndexedDbStore, MemoryStore, type Message, type Store, type Tokens } from "../src/index.js";
import { FileStore } from "../src/node.js";
import {
  CONV,
  URLS,
  consumer,
  fakeFetch,
  message,
  producer,
  token,
  until,
  queryResume,
  type FakeServer,
  type Route,
} from "./fakes.js";

const open: Client[] = [];
afterEach(() => {
  while (open.length) open.pop()!.close();
});

function client(p: FakeServer, c: FakeServer, extra: { routes?: Route[]; store?: Store; tokens?: Tokens; urlCursorsMaxChars?: number } = {}) {
  const fetch = fakeFetch([...(extra.routes ?? []), listOf(() => [])]);
  const made = new Client({
    ...URLS,
    fetch,
    store: extra.store ?? new MemoryStore(),
    webSocket: (url) => (url.includes("producer") ? p.factory(url) : c.factory(url)),
    backoff: { baseMs: 5, capMs: 20 },
    ...(extra.urlCursorsMaxChars === undefined ? {} : { urlCursorsMaxChars: extra.urlCursorsMaxChars }),
  });
  made.useTokens(extra.tokens ?? { accessToken: token(), refreshToken: "r0" });
  open.push(made);
  return { client: made, fetch };
}

/** `GET /v1/conversations` answering the conversations `list()` gives at the time it is asked. */
const listOf = (list: () => { id: string; last_seq: number }[]): Route => (url) =>
  url.pathname === "/v1/conversations"
    ? { status: 200, body: { conversations: list().map((c) => summary(c.id, c.last_seq)) } }
    : undefined;

function summary(id: string, lastSeq: number) {
  return { id, kind: "group", title: "t", members: [], created_at: "", last_seq: lastSeq, read_seq: 0, unread_count: lastSeq, last_message: null };
}

const listed = (fetch: { calls: string[] }): number => fetch.calls.filter((call) => call === "GET /v1/conversations").length;

function received(c: Client): Message[] {
  const got: Message[] = [];
  c.on("message", (m) => got.push(m));
  return got;
}

// -- sending ----------------------------------------------------------------------------------

test("send() resolves with the stored ack and its seq; the frame asks wait stored, with a fresh client_msg_id; auth comes first", async () => {
  const p = producer();
  const { client: c } = client(p, consumer());
  await c.connect();
  const ack = await c.send(CONV, "hello");
  assert.equal(ack.duplicate, false);
  assert.equal(ack.seq, 1, "the ack of a wait-stored send carries the message's seq");
  assert.equal((await c.send(CONV, "again")).seq, 2);
  const [first, second] = p.last.sent;
  assert.equal(first!.type, "auth");
  assert.deepEqual(
    { ...second, client_msg_id: "x" },
    { type: "send", client_msg_id: "x", conversation_id: CONV, body: "hello", wait: "stored" },
  );
  assert.equal(ack.client_msg_id, second!.client_msg_id);
  assert.equal(c.pending().length, 0);
});

test("unacked sends are resent after a reconnect, same ids, in order, and resolve once", async () => {
  let hold = true;
  const p = producer({ hold: () => hold });
  const { client: c } = client(p, consumer());
  await c.connect();
  const sends = [c.send(CONV, "a"), c.send(CONV, "b"), c.send(CONV, "c")];
  await until(() => p.frames("send").length === 3, "three sends written");
  const ids = p.frames("send").map((f) => f.client_msg_id);
  hold = false;
  p.last.drop(1006); // the producer crashed before acking
  const acks = await Promise.all(sends);
  assert.deepEqual(acks.map((a) => a.client_msg_id), ids);
  assert.equal(p.sockets.length, 2);
  assert.deepEqual(p.sockets[1]!.sent.filter((f) => f.type === "send").map((f) => f.client_msg_id), ids, "resent in order");
  assert.deepEqual(p.stored, ids, "stored once each");
  assert.equal(c.resent, 3);
});

test("a send that was stored but not acked before the crash is acked duplicate after the resend", async () => {
  let ackNow = false;
  const p = producer({ hold: () => !ackNow });
  const { client: c } = client(p, consumer());
  await c.connect();
  const sent = c.send(CONV, "x");
  await until(() => p.frames("send").length === 1, "written");
  p.accept(p.frames("send")[0]!); // stored, ack lost with the server
  ackNow = true;
  p.last.drop(1012);
  const ack = await sent;
  assert.equal(ack.duplicate, true);
  assert.equal(ack.seq, 1);
  assert.equal(p.stored.length, 1);
});

for (const [where, makeStore] of [
  ["IndexedDB (a page reload)", () => new IndexedDbStore(`reload-${Math.random()}`)],
  ["a FileStore (a Node process restart)", () => new FileStore(join(mkdtempSync(join(tmpdir(), "rtm-js-")), "state.json"))],
] as const) test(`the next Client resends what the last one left in ${where}`, async () => {
  const store = makeStore();
  const silent = producer({ hold: () => true });
  const first = client(silent, consumer(), { store }).client;
  await first.connect();
  void first.send(CONV, "before the reload");
  await until(() => silent.frames("send").length === 1, "written");
  const id = silent.frames("send")[0]!.client_msg_id;
  first.close(); // the page goes away before the ack

  const p = producer();
  const second = client(p, consumer(), { store }).client;
  const acked: string[] = [];
  second.on("ack", (ack, entry) => acked.push(`${ack.client_msg_id} ${entry.body}`));
  await second.connect();
  await until(() => acked.length === 1, "the restored send acked");
  assert.deepEqual(acked, [`${id} before the reload`]);
  assert.deepEqual(await store.loadOutbox(second.userId), [], "acked sends leave the store");
});

test("a transient error is retried with the same id after retry_after_ms; a refusal rejects", async () => {
  let tries = 0;
  const p = producer();
  const ack = p.handler;
  p.handler = (socket, frame) => {
    if (frame.type === "send" && frame.body === "busy" && tries++ === 0) {
      socket.push({ type: "error", code: "unavailable", ref: frame.client_msg_id, message: "bus down", retry_after_ms: 20 });
    } else if (frame.type === "send" && frame.body === "") {
      socket.push({ type: "error", code: "validation_failed", ref: frame.client_msg_id, message: "empty", field: "body" });
    } else ack(socket, frame);
  };
  const { client: c } = client(p, consumer());
  await c.connect();
  const busy = await c.send(CONV, "busy");
  assert.equal(tries, 2);
  assert.equal(p.frames("send").filter((f) => f.client_msg_id === busy.client_msg_id).length, 2);
  await assert.rejects(c.send(CONV, ""), { code: "validation_failed", field: "body" });
  assert.equal(c.pending().length, 0);
});

test("not_stored_yet: the same client_msg_id is sent again after retry_after_ms and resolves with the stored ack", async () => {
  const p = producer();
  const ack = p.handler;
  let answered = 0;
  p.handler = (socket, frame) => {
    if (frame.type === "send" && answered++ === 0) {
      p.accept(frame); // accepted (JetStream has it), but PostgreSQL not in time: no ack
      socket.push({ type: "error", code: "not_stored_yet", ref: frame.client_msg_id, message: "not stored yet", retry_after_ms: 30 });
    } else ack(socket, frame);
  };
  const { client: c } = client(p, consumer());
  const errors: unknown[] = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  const started = Date.now();
  const stored = await c.send(CONV, "slow to store");
  assert.ok(Date.now() - started >= 25, "resent after retry_after_ms");
  const writes = p.frames("send");
  assert.equal(writes.length, 2);
  assert.deepEqual(writes.map((f) => [f.client_msg_id, f.wait]), [
    [stored.client_msg_id, "stored"],
    [stored.client_msg_id, "stored"],
  ]);
  assert.equal(stored.duplicate, true, "the resend is acked as the original message");
  assert.equal(stored.seq, 1);
  assert.deepEqual(p.stored, [stored.client_msg_id], "stored once");
  assert.equal(c.resent, 1);
  assert.deepEqual(errors, [], "a transient answer is no error of the application's");
});

// -- receiving --------------------------------------------------------------------------------

test("the consumer socket is opened with the stored cursors (?cursors=), no resume frame; what it already had is dropped", async () => {
  const store = new MemoryStore();
  const c0 = consumer((socket, frame) => {
    const from = (frame.cursors as Record<string, number>)[CONV] ?? 0;
    for (let seq = 3; seq <= 6; seq++) socket.push(message(seq)); // 3, 4 again: a seam
    socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: 6, recovered: true } } });
    assert.equal(from, 4);
  });
  const { client: c } = client(producer(), c0, { store });
  await store.putCursor(c.userId, CONV, 4);
  const got = received(c);
  await c.connect();
  await until(() => got.length === 2, "5 and 6");
  assert.equal(new URL(c0.last.url).search, `?cursors=${CONV}:4`);
  assert.deepEqual(c0.frames("resume"), [], "the URL carried the cursors");
  assert.deepEqual(got.map((m) => m.seq), [5, 6]);
  assert.equal(c.duplicatesDropped, 2);
  await new Promise((r) => setTimeout(r, 100)); // cursors are written in bursts
  assert.equal((await store.loadCursors(c.userId))[CONV], 6, "the cursor is persisted");
});

test("with nothing to resume the socket opens with ?cursors= (live at once, no hold) and writes no resume", async () => {
  const c0 = consumer((socket) => socket.push({ type: "resumed", conversations: {} }));
  const { client: c } = client(producer(), c0);
  const resumed: unknown[] = [];
  c.on("resumed", (f) => resumed.push(f));
  await c.connect();
  await until(() => resumed.length === 1, "resumed");
  assert.equal(new URL(c0.last.url).search, "?cursors=");
  assert.deepEqual(c0.frames("resume"), []);
});

const ids = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `0195f3a1-0a2b-7c3d-8e4f-${String(i).padStart(12, "0")}`);

for (const [n, limit, frames] of [
  [120, undefined, [120]], // 120 cursors are ~4,800 characters: past the default 4,000
  [2500, undefined, [1000, 1000, 500]], // and at most 1,000 conversations per frame
  [3, 100, [3]], // a lower limit given with the options
] as const) {
  test(`${n} cursors that do not fit in the URL (limit ${limit ?? "default"}): ?resume=1 and resume frames of ${frames.join(", ")}`, async () => {
    const store = new MemoryStore();
    const c0 = consumer();
    const { client: c } = client(producer(), c0, { store, ...(limit === undefined ? {} : { urlCursorsMaxChars: limit }) });
    for (const [i, id] of ids(n).entries()) await store.putCursor(c.userId, id, i);
    await c.connect();
    await until(() => c0.frames("resume").length === frames.length, "the resume frames");
    assert.equal(new URL(c0.last.url).search, "?resume=1");
    assert.deepEqual(c0.frames("resume").map((f) => Object.keys(f.cursors as object).length), frames);
    const all = Object.assign({}, ...c0.frames("resume").map((f) => f.cursors));
    assert.deepEqual(all, Object.fromEntries(ids(n).map((id, i) => [id, i])));
  });
}

test("90 cursors fit in the URL under the default limit: no resume frame", async () => {
  const store = new MemoryStore();
  const c0 = consumer();
  const { client: c } = client(producer(), c0, { store });
  for (const [i, id] of ids(90).entries()) await store.putCursor(c.userId, id, i);
  await c.connect();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(Object.keys(queryResume(c0.last)!.cursors as object).length, 90);
  assert.ok(new URL(c0.last.url).search.length < 4100);
  assert.deepEqual(c0.frames("resume"), []);
});

test("cursors the server refuses in the URL are sent again as a resume frame (it holds live messages for it)", async () => {
  const store = new MemoryStore();
  let first = true;
  const c0 = consumer((socket, frame) => {
    if (first) {
      first = false; // as for a server with a lower RTM_MAX_RESUME_CONVERSATIONS
      socket.push({ type: "error", code: "validation_failed", ref: null, message: "cursors: at most ...", field: "cursors" });
    } else socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: (frame.cursors as Record<string, number>)[CONV], recovered: true } } });
  });
  const { client: c } = client(producer(), c0, { store });
  const errors: unknown[] = [];
  c.on("error", (e) => errors.push(e));
  const resumed: unknown[] = [];
  c.on("resumed", (f) => resumed.push(f));
  await store.putCursor(c.userId, CONV, 7);
  await c.connect();
  await until(() => resumed.length === 1, "resumed");
  assert.deepEqual(c0.frames("resume"), [{ type: "resume", cursors: { [CONV]: 7 } }]);
  assert.deepEqual(errors, []);
});

const historyOf = (head: number): Route => (url) => {
  const match = /\/v1\/conversations\/([^/]+)\/messages/.exec(url.pathname);
  if (!match) return undefined;
  const after = Number(url.searchParams.get("after_seq") ?? 0);
  const limit = Number(url.searchParams.get("limit") ?? 50);
  const messages = [];
  for (let seq = after + 1; seq <= Math.min(head, after + limit); seq++) {
    const { type: _t, ...m } = message(seq, match[1]);
    messages.push(m);
  }
  return { status: 200, body: { messages, has_more: after + limit < head } };
};

test("recovered:false pages history after the cursor (the server sent none of the missed ones)", async () => {
  const c0 = consumer((socket) => {
    socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: 2, recovered: false } } });
  });
  const store = new MemoryStore();
  const { client: c, fetch } = client(producer(), c0, { store, routes: [historyOf(451)] });
  await store.putCursor(c.userId, CONV, 2);
  const got = received(c);
  await c.connect();
  await until(() => got.length === 449, "3..451");
  assert.deepEqual(got.map((m) => m.seq), Array.from({ length: 449 }, (_, i) => i + 3));
  assert.ok(fetch.calls.includes(`GET /v1/conversations/${CONV}/messages?after_seq=2&limit=200`));
  assert.equal(fetch.calls.filter((call) => call.includes("/messages")).length, 3, "three pages of 200");
});

test("a gap that history answers forbidden (removed from the conversation) stops being filled, and its cursor goes", async () => {
  const c0 = consumer((socket) => {
    socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: 9, recovered: false } } });
  });
  const store = new MemoryStore();
  const forbidden: Route = (url) =>
    url.pathname.endsWith("/messages") ? { status: 404, body: { error: { code: "forbidden", message: "not a member" } } } : undefined;
  const { client: c, fetch } = client(producer(), c0, { store, routes: [forbidden] });
  await store.putCursor(c.userId, CONV, 2);
  await c.connect();
  await until(() => fetch.calls.some((call) => call.includes("/messages")), "the first history page asked");
  await new Promise((r) => setTimeout(r, 300)); // a retry would come within 200 ms
  assert.equal(fetch.calls.filter((call) => call.includes("/messages")).length, 1, "asked once, not every few seconds for ever");
  assert.deepEqual(c.cursors(), {});
  assert.deepEqual(await store.loadCursors(c.userId), { [CONNECTED_MARKER]: 1 }, "only the marker of a past connection");
});

test("a gap in the live stream is filled from history before what follows it", async () => {
  const c0 = consumer((socket) => {
    socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: 1, recovered: true } } });
    socket.push(message(2));
    socket.push(message(5)); // 3 and 4 missing
    socket.push(message(6));
  });
  const store = new MemoryStore();
  const { client: c } = client(producer(), c0, { store, routes: [historyOf(6)] });
  await store.putCursor(c.userId, CONV, 1);
  const got = received(c);
  await c.connect();
  await until(() => got.length === 5, "2..6");
  assert.deepEqual(got.map((m) => m.seq), [2, 3, 4, 5, 6]);
});

test("a consumer crash: reconnect, resume from the cursor, no loss and no duplicate", async () => {
  let head = 0;
  const c0 = consumer((socket, frame) => {
    const from = (frame.cursors as Record<string, number>)[CONV] ?? 0;
    for (let seq = Math.max(1, from - 1); seq <= head; seq++) socket.push(message(seq)); // one repeat
    socket.push({ type: "resumed", conversations: { [CONV]: { last_seq: head, recovered: true } } });
  });
  const { client: c } = client(producer(), c0, { routes: [historyOf(100)] });
  const got = received(c);
  await c.connect();
  for (head = 1; head <= 3; head++) c0.last.push(message(head));
  head = 6; // 4..6 stored while the consumer is down
  c0.last.drop(1006);
  await until(() => got.length === 6, "1..6");
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(queryResume(c0.sockets[1]!), { type: "resume", cursors: { [CONV]: 3 } }, "the new socket's URL");
  assert.deepEqual(c0.frames("resume"), []);
});

test("an unavailable answer to the URL's resume sends the same cursors in a resume frame after retry_after_ms", async () => {
  let first = true;
  const c0 = consumer((socket) => {
    if (first) {
      first = false;
      socket.push({ type: "error", code: "unavailable", ref: null, message: "db down", retry_after_ms: 10 });
    } else socket.push({ type: "resumed", conversations: {} });
  });
  const store = new MemoryStore();
  const { client: c } = client(producer(), c0, { store });
  await store.putCursor(c.userId, CONV, 3);
  const resumed: unknown[] = [];
  c.on("resumed", (f) => resumed.push(f));
  await c.connect();
  await until(() => resumed.length === 1, "resumed");
  assert.deepEqual(c0.frames("resume"), [{ type: "resume", cursors: { [CONV]: 3 } }]);
});

// -- conversations the socket was not there to hear about ---------------------------------------

const OTHER_CONV = "0195f3a1-0a2b-7c3d-8e4f-00000000000b";

test("a conversation created while the consumer socket was down is listed at the reconnect and delivered from seq 1", async () => {
  let list: { id: string; last_seq: number }[] = [];
  const c0 = consumer();
  const { client: c, fetch } = client(producer(), c0, { routes: [listOf(() => list), historyOf(3)] });
  const got = received(c);
  const seen: string[] = [];
  c.on("listed", (conversations) => seen.push(`listed ${conversations.map((x) => x.id === CONV).join()}`));
  c.on("message", (m) => seen.push(`message ${m.seq}`));
  await c.connect();
  await until(() => listed(fetch) === 1, "the list asked once the socket is ready");
  c0.refuse = 1012;
  c0.last.drop(1006);
  list = [{ id: CONV, last_seq: 3 }]; // created, and 3 messages sent, while the socket was down
  c0.refuse = undefined;
  await until(() => got.length === 3, "1..3 of the new conversation");
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3]);
  assert.equal(listed(fetch), 2, "listed again after the reconnect");
  assert.deepEqual(seen, ["listed ", "listed true", "message 1", "message 2", "message 3"], "the application hears of it first");
  assert.deepEqual(c.cursors(), { [CONV]: 3 });
});

test("a live message of a conversation without a cursor, once the client has connected before, is delivered after 1..N-1", async () => {
  const c0 = consumer();
  const store = new MemoryStore();
  const { client: c } = client(producer(), c0, { store, routes: [historyOf(4)] });
  await store.putCursor(c.userId, CONNECTED_MARKER, 1); // a Client has connected over this store
  const got = received(c);
  await c.connect();
  c0.last.push(message(4)); // its `conversation` event went to no socket of ours
  await until(() => got.length === 4, "1..4");
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4]);
});

test("a first-ever connection (empty store) follows the conversations it finds from their last seq; the next Client over the store delivers one created meanwhile from seq 1", async () => {
  const store = new MemoryStore();
  let list = [{ id: CONV, last_seq: 5 }];
  const c0 = consumer();
  const first = client(producer(), c0, { store, routes: [listOf(() => list), historyOf(6)] });
  const got = received(first.client);
  await first.client.connect();
  await until(() => first.client.cursors()[CONV] === 5, "following from the head");
  c0.last.push(message(6));
  await until(() => got.length === 1, "6");
  assert.deepEqual(got.map((m) => m.seq), [6], "the older five are history, not message events");
  first.client.close(); // the page is closed...
  await new Promise((r) => setTimeout(r, 80)); // (cursors are written within 50 ms)
  list = [{ id: CONV, last_seq: 6 }, { id: OTHER_CONV, last_seq: 2 }]; // ...while someone adds us to a conversation

  const second = client(producer(), consumer(), { store, routes: [listOf(() => list), historyOf(2)] });
  const again = received(second.client);
  await second.client.connect();
  await until(() => again.length === 2, "1, 2 of the conversation created while closed");
  assert.deepEqual(again.map((m) => `${m.conversation_id === OTHER_CONV ? "new" : "old"} ${m.seq}`), ["new 1", "new 2"]);
  assert.deepEqual(second.client.cursors(), { [CONV]: 6, [OTHER_CONV]: 2 });
});

test("conversations() just before connect() is the list of that connection: asked once, its conversations in the socket's URL", async () => {
  const store = new MemoryStore();
  const list = [{ id: CONV, last_seq: 2 }, { id: OTHER_CONV, last_seq: 4 }];
  const c0 = consumer();
  const { client: c, fetch } = client(producer(), c0, { store, routes: [listOf(() => list)] });
  await store.putCursor(c.userId, CONV, 2); // this store has been connected before
  assert.equal((await c.conversations()).length, 2); // as the web page does, to show the list
  await c.connect();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(listed(fetch), 1, "not asked again for the connection");
  assert.deepEqual(queryResume(c0.sockets[0]!), { type: "resume", cursors: { [CONV]: 2, [OTHER_CONV]: 0 } });
  c0.last.drop(1006);
  await until(() => listed(fetch) === 2, "a reconnect lists again (that list was older than the socket's drop)");
});

test("a first-ever connection after conversations() resumes each conversation from its listed last seq", async () => {
  const list = [{ id: CONV, last_seq: 7 }];
  const c0 = consumer();
  const { client: c, fetch } = client(producer(), c0, { routes: [listOf(() => list)] });
  await c.conversations();
  await c.connect();
  assert.deepEqual(queryResume(c0.sockets[0]!), { type: "resume", cursors: { [CONV]: 7 } });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(listed(fetch), 1);
});

// -- close codes and tokens --------------------------------------------------------------------

const refreshRoute = (issued: string[]): Route => (url, init) => {
  if (url.pathname !== "/v1/auth/refresh") return undefined;
  const { refresh_token } = JSON.parse(String(init?.body));
  const access = token();
  issued.push(`${refresh_token}->${access}`);
  return {
    status: 200,
    body: { access_token: access, refresh_token: `${refresh_token}+`, token_type: "Bearer", expires_in: 900, session_id: "s", user: {} },
  };
};

test("4505: refresh the token, then reconnect with the new one", async () => {
  const issued: string[] = [];
  const p = producer();
  const { client: c } = client(p, consumer(), { routes: [refreshRoute(issued)] });
  const rotated: Tokens[] = [];
  c.on("tokens", (t) => rotated.push(t));
  await c.connect();
  p.last.drop(4505, "token expired");
  await until(() => p.sockets.length === 2 && c.states.producer === "open", "reconnected");
  assert.equal(issued.length, 1);
  assert.equal(p.sockets[1]!.sent[0]!.token, issued[0]!.split("->")[1]);
  assert.equal(rotated.at(-1)!.refreshToken, "r0+", "the rotated refresh token is handed out");
  await c.send(CONV, "after the refresh");
});

test("4505 again right after a refresh backs off: no tight refresh-and-connect loop", async () => {
  const issued: string[] = [];
  const c0 = consumer();
  const c = new Client({
    ...URLS,
    fetch: fakeFetch([refreshRoute(issued)]),
    store: new MemoryStore(),
    webSocket: (url) => (url.includes("producer") ? producer().factory(url) : c0.factory(url)),
    backoff: { baseMs: 40, capMs: 80 },
  });
  open.push(c);
  c.useTokens({ accessToken: token(), refreshToken: "r0" });
  await c.connect();
  c0.refuse = 4505; // a server whose clock runs ahead: every new token is "expired"
  c0.last.drop(4505, "token expired");
  await new Promise((r) => setTimeout(r, 400));
  // A tight loop makes one attempt every millisecond or two; backing off (windows of 40, 80 ms,
  // full jitter) makes about ten in 400 ms.
  assert.ok(c0.sockets.length <= 25, `${c0.sockets.length} sockets in 400 ms`);
  assert.ok(issued.length <= 25, `${issued.length} refreshes in 400 ms`);
  assert.ok(c0.sockets.length >= 3, "it keeps trying (4505 is not final)");
  c0.refuse = undefined;
  await until(() => c.states.consumer === "open", "open once the server takes the token", 2000);
});

for (const code of [4500, 4501, 4503, 4504, 1008, 1009]) {
  test(`close ${code}: no reconnect, the state says failed`, async () => {
    const c0 = consumer();
    const { client: c } = client(producer(), c0);
    const states: string[] = [];
    c.on("state", (s, d) => d.socket === "consumer" && states.push(s.consumer));
    await c.connect();
    c0.last.drop(code);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c0.sockets.length, 1, "never reconnected");
    assert.equal(states.at(-1), "failed");
  });
}

test("connect() rejects when a socket is refused for good (4504 too many connections)", async () => {
  const c0 = consumer();
  c0.refuse = 4504;
  const { client: c } = client(producer(), c0);
  await assert.rejects(c.connect(), /consumer socket closed 4504/);
  assert.equal(c0.sockets.length, 1);
});

test("an access token that expired meanwhile is refreshed before the socket opens", async () => {
  const issued: string[] = [];
  const p = producer();
  const { client: c } = client(p, consumer(), {
    routes: [refreshRoute(issued)],
    tokens: { accessToken: token(-60), refreshToken: "r0", expiresAt: Date.now() - 60_000 },
  });
  await c.connect();
  assert.equal(issued.length, 1, "one refresh shared by both sockets");
  assert.equal(p.sockets[0]!.sent[0]!.token, issued[0]!.split("->")[1]);
});

test("4500 (invalid token): no refresh and no reconnect, ever; the state says failed with the code (issue 14)", async () => {
  const issued: string[] = [];
  const c0 = consumer();
  const { client: c } = client(producer(), c0, { routes: [refreshRoute(issued)] });
  const details: { state: string; code?: number }[] = [];
  c.on("state", (s, d) => d.socket === "consumer" && details.push({ state: s.consumer, ...(d.code === undefined ? {} : { code: d.code }) }));
  await c.connect();
  c0.last.drop(4500, "invalid token");
  await until(() => c.states.consumer === "failed", "failed");
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(details.at(-1), { state: "failed", code: 4500 });
  assert.equal(issued.length, 0, "no refresh");
  assert.equal(c0.sockets.length, 1, "never reconnected");
});

test("1012 and 1006 reconnect with backoff, through each consumer instance in turn", async () => {
  const c0 = consumer();
  const fetch = fakeFetch([]);
  const c = new Client({ ...URLS, consumerUrl: ["http://consumer.test", "http://consumer2.test"], fetch, store: new MemoryStore(), webSocket: (url) => (url.includes("producer") ? producer().factory(url) : c0.factory(url)), backoff: { baseMs: 5, capMs: 20 } });
  open.push(c);
  c.useTokens({ accessToken: token() });
  await c.connect();
  c0.last.drop(1012);
  await until(() => c0.sockets.length === 2 && c.states.consumer === "open", "reconnected");
  c0.last.drop(1006);
  await until(() => c0.sockets.length === 3 && c.states.consumer === "open", "reconnected again");
  assert.deepEqual(c0.sockets.map((s) => new URL(s.url).host), ["consumer.test", "consumer2.test", "consumer.test"]);
});

test("a silent socket (no pong) is replaced without waiting for TCP", async () => {
  const p = producer();
  const deaf = p.handler;
  let mute = false;
  p.handler = (socket, frame) => (mute ? undefined : deaf(socket, frame));
  const fetch = fakeFetch([]);
  const c = new Client({ ...URLS, fetch, store: new MemoryStore(), webSocket: (url) => (url.includes("producer") ? p.factory(url) : consumer().factory(url)), backoff: { baseMs: 5, capMs: 20 }, pingIntervalMs: 40, pongTimeoutMs: 40 });
  open.push(c);
  c.useTokens({ accessToken: token() });
  await c.connect();
  mute = true;
  await until(() => p.frames("ping").length > 0, "a ping");
  mute = false;
  await until(() => p.sockets.length === 2 && c.states.producer === "open", "replaced", 2000);
});

test("the token is refreshed before it expires and both sockets re-authenticate in-band", async () => {
  const issued: string[] = [];
  const p = producer();
  const c0 = consumer();
  const { client: c } = client(p, c0, {
    routes: [refreshRoute(issued)],
    tokens: { accessToken: token(), refreshToken: "r0", expiresAt: Date.now() + 300 },
  });
  await c.connect();
  await until(() => issued.length === 1, "refreshed", 2000);
  const fresh = issued[0]!.split("->")[1];
  await until(() => p.last.sent.some((f) => f.type === "auth" && f.token === fresh), "producer re-auth");
  await until(() => c0.last.sent.some((f) => f.type === "auth" && f.token === fresh), "consumer re-auth");
  assert.equal(p.sockets.length, 1, "no reconnect");
});

test("concurrent refreshes share one request (a refresh token works once)", async () => {
  const issued: string[] = [];
  const { client: c, fetch } = client(producer(), consumer(), { routes: [refreshRoute(issued)] });
  const session = (c as unknown as { session: { refresh(): Promise<string> } }).session;
  const [a, b] = await Promise.all([session.refresh(), session.refresh()]);
  assert.equal(a, b);
  assert.equal(fetch.calls.filter((x) => x.includes("refresh")).length, 1);
});

test("HTTP: a 401 refreshes once and retries; errors carry the protocol's code", async () => {
  const issued: string[] = [];
  let calls = 0;
  const routes: Route[] = [
    refreshRoute(issued),
    (url) => {
      if (url.pathname !== "/v1/conversations") return undefined;
      return calls++ === 0 ? { status: 401, body: { error: { code: "unauthorized", message: "expired" } } } : { status: 200, body: { conversations: [] } };
    },
    (url) => (url.pathname.endsWith("/members") ? { status: 404, body: { error: { code: "forbidden", message: "no" } } } : undefined),
  ];
  const { client: c } = client(producer(), consumer(), { routes });
  assert.deepEqual(await c.conversations(), []);
  assert.equal(issued.length, 1);
  await assert.rejects(c.addMember(CONV, "u"), { code: "forbidden", status: 404 });
});

const readRoute = (answer: (id: string, seq: number) => { status: number; body?: unknown }, posted: string[] = []): Route => (url, init) => {
  const match = /^\/v1\/conversations\/([^/]+)\/read$/.exec(url.pathname);
  if (!match || init?.method !== "POST") return undefined;
  const { seq } = JSON.parse(String(init.body)) as { seq: number };
  posted.push(`${match[1]} ${seq}`);
  return answer(match[1]!, seq);
};
const stored = (id: string, seq: number) => ({ status: 200, body: { conversation_id: id, read_seq: seq, last_seq: seq, unread_count: 0 } });

test("markRead resolves on the producer's read_ok, not when the frame is written", async () => {
  const p = producer({ holdReads: () => true });
  const posted: string[] = [];
  const { client: c } = client(p, consumer(), { routes: [readRoute(stored, posted)] });
  await c.connect();
  let done = false;
  const read = c.markRead(CONV, 4).then(() => (done = true));
  await until(() => p.frames("read").length === 1, "the read frame");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(done, false, "no read_ok yet");
  p.last.push({ type: "read_ok", conversation_id: CONV, seq: 3 }); // another read's reply
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(done, false, "a read_ok for another seq");
  p.last.push({ type: "read_ok", conversation_id: CONV, seq: 4 });
  await read;
  assert.deepEqual(p.frames("read"), [{ type: "read", conversation_id: CONV, seq: 4 }]);
  assert.deepEqual(posted, [], "the socket answered: no HTTP");
});

test("markRead without an open producer socket stores the marker with POST /v1/conversations/{id}/read", async () => {
  const posted: string[] = [];
  const OTHER = "0195f3a1-0a2b-7c3d-8e4f-000000000009";
  const answer = (id: string, seq: number) =>
    id === OTHER ? { status: 404, body: { error: { code: "forbidden", message: "not yours" } } } : stored(id, seq);
  const { client: c } = client(producer(), consumer(), { routes: [readRoute(answer, posted)] });
  await c.markRead(CONV, 5); // never connected
  await assert.rejects(c.markRead(OTHER, 1), { code: "forbidden", status: 404 });
  assert.deepEqual(posted, [`${CONV} 5`, `${OTHER} 1`]);
});

test("a read whose producer socket goes down before its read_ok is stored over HTTP", async () => {
  const p = producer({ holdReads: () => true });
  const posted: string[] = [];
  const { client: c } = client(p, consumer(), { routes: [readRoute(stored, posted)] });
  await c.connect();
  const read = c.markRead(CONV, 8);
  await until(() => p.frames("read").length === 1, "the read frame");
  p.refuse = 1012;
  p.last.drop(1006); // the producer crashed: that read_ok will never come
  await read;
  assert.deepEqual(posted, [`${CONV} 8`]);
});

test("a read refused by an error frame (ref null) gets its own answer over HTTP, not an error event", async () => {
  const p = producer();
  const answer = p.handler;
  p.handler = (socket, frame) => {
    if (frame.type === "read") socket.push({ type: "error", code: "forbidden", ref: null, message: "not a member" });
    else answer(socket, frame);
  };
  const posted: string[] = [];
  const forbidden = () => ({ status: 404, body: { error: { code: "forbidden", message: "not yours" } } });
  const { client: c } = client(p, consumer(), { routes: [readRoute(forbidden, posted)] });
  const errors: unknown[] = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  await assert.rejects(c.markRead(CONV, 2), { code: "forbidden" });
  assert.deepEqual(posted, [`${CONV} 2`]);
  assert.deepEqual(errors, []);
});

test("HTTP unavailable while the producer reconnects: the highest marker waits for the socket and its read_ok", async () => {
  const p = producer();
  const posted: string[] = [];
  const down = () => ({ status: 503, body: { error: { code: "unavailable", message: "db down", retry_after_ms: 100 } } });
  const { client: c } = client(p, consumer(), { routes: [readRoute(down, posted)] });
  await c.connect();
  p.refuse = 1012;
  p.last.drop(1006);
  const reads = [c.markRead(CONV, 5), c.markRead(CONV, 9), c.markRead(CONV, 7)];
  await until(() => posted.length === 3, "three posts");
  p.refuse = undefined;
  await Promise.all(reads);
  assert.deepEqual(p.frames("read"), [{ type: "read", conversation_id: CONV, seq: 9 }]);
});

test("events: typing, read, presence and conversation pass through without their type", async () => {
  const c0 = consumer();
  const { client: c } = client(producer(), c0);
  const seen: string[] = [];
  c.on("typing", (e) => seen.push(`typing ${e.user_id}`));
  c.on("read", (e) => seen.push(`read ${e.seq}`));
  c.on("presence", (e) => seen.push(`presence ${e.status}`));
  c.on("conversation", (e) => seen.push(`conversation ${e.event} ${"type" in e}`));
  await c.connect();
  c0.last.push({ type: "typing", conversation_id: CONV, user_id: "u2" });
  c0.last.push({ type: "read", conversation_id: CONV, user_id: "u2", seq: 4 });
  c0.last.push({ type: "presence", user_id: "u2", status: "online" });
  c0.last.push({ type: "conversation", event: "member_removed", conversation: { id: CONV, kind: "group", title: null, members: [], created_at: "", last_seq: 0 } });
  assert.deepEqual(seen, ["typing u2", "read 4", "presence online", "conversation member_removed false"]);
});

test("a conversation created while connected is followed from seq 1; joining one follows its head", async () => {
  const c0 = consumer();
  const OTHER = "0195f3a1-0a2b-7c3d-8e4f-000000000002";
  const { client: c } = client(producer(), c0, { routes: [historyOf(2)] });
  const got = received(c);
  await c.connect();
  const state = (id: string, last_seq: number) => ({ id, kind: "group", title: "t", members: [], created_at: "", last_seq });
  c0.last.push({ type: "conversation", event: "created", conversation: state(CONV, 0) });
  c0.last.push({ type: "conversation", event: "member_added", conversation: state(OTHER, 40) });
  c0.last.push(message(2)); // 1 went missing (stored before the subscription): filled from history
  c0.last.push(message(41, OTHER));
  await until(() => got.length === 3, "1, 2 of the new one and 41 of the joined one");
  assert.deepEqual(got.map((m) => `${m.conversation_id === CONV ? "new" : "joined"} ${m.seq}`).sort(), ["joined 41", "new 1", "new 2"]);
  assert.deepEqual(c.cursors(), { [CONV]: 2, [OTHER]: 41 });
});

test("olderPages walks back from the newest page, each page ascending", async () => {
  const route: Route = (url) => {
    if (!url.pathname.endsWith("/messages")) return undefined;
    const before = Number(url.searchParams.get("before_seq") ?? 8);
    const limit = Number(url.searchParams.get("limit"));
    const from = Math.max(1, before - limit);
    const messages = [];
    for (let seq = from; seq < before; seq++) messages.push(message(seq));
    return { status: 200, body: { messages, has_more: from > 1 } };
  };
  const { client: c } = client(producer(), consumer(), { routes: [route] });
  const pages: number[][] = [];
  for await (const page of c.olderPages(CONV, { limit: 3 })) pages.push(page.map((m) => m.seq));
  assert.deepEqual(pages, [[5, 6, 7], [2, 3, 4], [1]]);
});

test("a send the store cannot keep is refused at once and never written", async () => {
  const store = new MemoryStore();
  store.putOutbox = async () => {
    throw new Error("quota exceeded");
  };
  const p = producer();
  const { client: c } = client(p, consumer(), { store });
  await c.connect();
  await assert.rejects(c.send(CONV, "x"), { code: "store_failed" });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(p.frames("send").length, 0);
  assert.equal(c.pending().length, 0);
});

test("a send is never written while the store is still keeping it (a store failure then means not sent)", async () => {
  const store = new MemoryStore();
  const p = producer();
  const { client: c } = client(p, consumer(), { store });
  await c.connect();
  const keep = store.putOutbox.bind(store);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  store.putOutbox = async (userId, entry) => {
    if (entry.body !== "slow") return keep(userId, entry);
    await released;
    throw new Error("quota exceeded");
  };
  const first = c.send(CONV, "first");
  const slow = c.send(CONV, "slow");
  await first; // its ack pumped the outbox while "slow" was being stored
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(p.frames("send").map((f) => f.body), ["first"], "written before it was stored");
  release();
  await assert.rejects(slow, { code: "store_failed" });
});

test("close() then connect() again: the sends waiting for an ack are resent and their promises resolve", async () => {
  let hold = true;
  const p = producer({ hold: () => hold });
  const { client: c } = client(p, consumer());
  await c.connect();
  const sent = c.send(CONV, "across a close");
  await until(() => p.frames("send").length === 1, "written");
  c.close();
  hold = false;
  c.useTokens({ accessToken: token(), refreshToken: "r1" }); // signed in again, same user
  await c.connect();
  const ack = await sent;
  assert.equal(ack.client_msg_id, p.frames("send")[0]!.client_msg_id);
  assert.equal(p.frames("send").length, 2);
});

test("a socket that never opens (a frozen server) is given up after the handshake timeout", async () => {
  const frozen = consumer();
  let freeze = true;
  const factory = frozen.factory;
  const sockets: string[] = [];
  const c = new Client({
    ...URLS,
    fetch: fakeFetch([]),
    store: new MemoryStore(),
    webSocket: (url) => {
      if (url.includes("producer")) return producer().factory(url);
      sockets.push(url);
      if (freeze) {
        freeze = false;
        return { readyState: 0, send() {}, close() {}, onopen: null, onmessage: null, onclose: null, onerror: null };
      }
      return factory(url);
    },
    backoff: { baseMs: 5, capMs: 20 },
    handshakeTimeoutMs: 100,
  });
  open.push(c);
  c.useTokens({ accessToken: token() });
  const started = Date.now();
  await c.connect();
  assert.equal(sockets.length, 2);
  assert.ok(Date.now() - started >= 100);
});
