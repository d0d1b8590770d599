// The SDK against the real system while its producer and a consumer are killed
// (driven by tests/e2e/test_js_sdk.py, which starts the system and does the killing).
//
// Two users, one direct conversation. Alice calls `send()` N times at once and awaits the acks;
// Bob listens for `message`. That is all the application does: no retry, no dedupe, no resume —
// the SDK owns those. Progress goes to stdout as JSON lines (the test kills on them); the last
// line is the result: what was sent, acked and delivered, duplicates, order, recovery times.
import { Client, MemoryStore } from "../dist/index.js";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const AUTH = env("RTM_JS_AUTH_URL");
const PRODUCER = env("RTM_JS_PRODUCER_URL");
const CONSUMERS = env("RTM_JS_CONSUMER_URLS").split(",");
const N = Number(process.env.RTM_JS_MESSAGES ?? 200);
const TIMEOUT_MS = Number(process.env.RTM_JS_TIMEOUT_MS ?? 45_000);
// The producer's frame rate limit of the system under test (its default is 20/s): the outbox
// paces itself below it, so a raised limit keeps its whole window (32 sends) in flight.
const RATE = process.env.RTM_JS_RATE ? Number(process.env.RTM_JS_RATE) : undefined;

const t0 = Date.now();
const now = () => Date.now() - t0;
const say = (line) => process.stdout.write(JSON.stringify({ t: now(), ...line }) + "\n");

function makeClient() {
  return new Client({
    authUrl: AUTH,
    producerUrl: PRODUCER,
    consumerUrl: CONSUMERS,
    store: new MemoryStore(),
    ...(RATE ? { outbox: { ratePerSecond: RATE, rateBurst: RATE } } : {}),
  });
}

async function signUp(client, name) {
  const username = `${name}_${Math.random().toString(36).slice(2, 10)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  await client.register(username, password);
  await client.login(username, password);
}

/** Socket outages seen by one client: from leaving `open` to being `open` again. */
function watchStates(client, who) {
  const outages = [];
  const down = {};
  client.on("state", (states, detail) => {
    const state = states[detail.socket];
    if (state === "reconnecting" && down[detail.socket] === undefined) {
      down[detail.socket] = now();
      say({ state: `${who}.${detail.socket}`, to: state, code: detail.code });
    } else if (state === "open" && down[detail.socket] !== undefined) {
      outages.push({ who, socket: detail.socket, from: down[detail.socket], ms: now() - down[detail.socket] });
      say({ state: `${who}.${detail.socket}`, to: state, after_ms: now() - down[detail.socket] });
      delete down[detail.socket];
    } else if (state === "failed") {
      say({ state: `${who}.${detail.socket}`, to: state, code: detail.code });
    }
  });
  return outages;
}

function largestGap(times) {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
  return gap;
}

const alice = makeClient();
const bob = makeClient();
await signUp(alice, "alice");
await signUp(bob, "bob");
const outages = [];
const aliceOutages = watchStates(alice, "alice");
const bobOutages = watchStates(bob, "bob");
await Promise.all([alice.connect(), bob.connect()]);
const conversation = await alice.createConversation({ kind: "direct", member_ids: [bob.userId] });

const delivered = [];
const deliveredAt = [];
bob.on("message", (message) => {
  if (message.conversation_id !== conversation.id) return;
  delivered.push(message);
  deliveredAt.push(now());
  if (delivered.length % 10 === 0) say({ delivered: delivered.length });
});

const ackedAt = [];
let duplicateAcks = 0;
say({ phase: "sending", messages: N });
const acks = await Promise.race([
  Promise.all(
    Array.from({ length: N }, (_, i) =>
      alice.send(conversation.id, `message ${i}`).then((ack) => {
        ackedAt.push(now());
        if (ack.duplicate) duplicateAcks++;
        if (ackedAt.length % 10 === 0) say({ acked: ackedAt.length, unacked: alice.pending().length });
        return ack;
      }),
    ),
  ),
  new Promise((_, reject) => setTimeout(() => reject(new Error("not every send was acked in time")), TIMEOUT_MS)),
]);

const deadline = Date.now() + TIMEOUT_MS;
while (delivered.length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 500)); // anything extra (a duplicate) would arrive now

// What PostgreSQL holds, paged through the SDK's history.
const stored = [];
for await (const page of bob.olderPages(conversation.id, { limit: 200 })) stored.unshift(...page);

const bodies = delivered.map((m) => m.body);
const expected = Array.from({ length: N }, (_, i) => `message ${i}`);
const seen = new Set();
let duplicates = 0;
for (const body of bodies) (seen.has(body) ? duplicates++ : seen.add(body));
outages.push(...aliceOutages, ...bobOutages);
const seqOf = new Map(delivered.map((m) => [m.message_id, m.seq]));
say({
  result: {
    sent: N,
    acked: acks.length,
    distinct_message_ids: new Set(acks.map((a) => a.message_id)).size,
    duplicate_acks: duplicateAcks,
    resent_by_sdk: alice.resent,
    delivered: delivered.length,
    duplicates_delivered: duplicates,
    duplicates_dropped_by_sdk: bob.duplicatesDropped,
    in_order: JSON.stringify(bodies) === JSON.stringify(expected),
    seqs_dense: delivered.every((m, i) => m.seq === i + 1),
    stored: stored.length,
    stored_matches_delivered: JSON.stringify(stored.map((m) => m.message_id)) === JSON.stringify(delivered.map((m) => m.message_id)),
    // Sends wait for stored: every ack carries the seq Bob got the message with.
    ack_seqs_match_delivered: acks.every((a) => Number.isInteger(a.seq) && seqOf.get(a.message_id) === a.seq),
    largest_ack_gap_ms: largestGap(ackedAt),
    largest_delivery_gap_ms: largestGap(deliveredAt),
    // From Bob's consumer socket going down to his next message: reconnect and resume, and,
    // when Bob had everything stored already, the other consumer taking the killed one's
    // partitions over (the next message is stored only then).
    consumer_switch_to_next_delivery_ms: bobOutages
      .filter((o) => o.socket === "consumer")
      .map((o) => (deliveredAt.find((t) => t >= o.from) ?? NaN) - o.from),
    outages,
    elapsed_ms: now(),
  },
});
alice.close();
bob.close();
process.exit(0);
