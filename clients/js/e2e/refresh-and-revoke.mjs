// Token refresh and session revocation against the real system (driven by
// tests/e2e/test_js_sdk.py). Alice refreshes her tokens while connected: both sockets must stay
// open (in-band `auth`), and sending and receiving go on. Then someone presents her previous,
// already rotated refresh token: auth revokes the session, the services close her sockets 4503,
// and the SDK must not reconnect. The last stdout line is the result.
import { Client, MemoryStore } from "../dist/index.js";

const AUTH = process.env.RTM_JS_AUTH_URL;
const PRODUCER = process.env.RTM_JS_PRODUCER_URL;
const CONSUMERS = process.env.RTM_JS_CONSUMER_URLS.split(",");

const client = () => new Client({ authUrl: AUTH, producerUrl: PRODUCER, consumerUrl: CONSUMERS, store: new MemoryStore() });
async function signUp(c, name) {
  const username = `${name}_${Math.random().toString(36).slice(2, 10)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  await c.register(username, password);
  await c.login(username, password);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const alice = client();
const bob = client();
await signUp(alice, "alice");
await signUp(bob, "bob");
const states = [];
alice.on("state", (s, d) => states.push(`${d.socket}:${s[d.socket]}${d.code ? ` ${d.code}` : ""}`));
await Promise.all([alice.connect(), bob.connect()]);
states.length = 0; // from here on, any change of state is news
const chat = await alice.createConversation({ kind: "direct", member_ids: [bob.userId] });
const got = [];
bob.on("message", (m) => got.push(m.body));

await alice.send(chat.id, "before the refresh");
const before = alice.tokens;
const after = await alice.refreshTokens();
await sleep(300); // the auth frames are answered (auth_ok); a refused one would close the socket
await alice.send(chat.id, "after the refresh");
const deadline = Date.now() + 5000;
while (got.length < 2 && Date.now() < deadline) await sleep(20);
const statesAfterRefresh = [...states];

// A thief presents the rotated refresh token: the whole session is revoked.
const reuse = await fetch(`${AUTH}/v1/auth/refresh`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ refresh_token: before.refreshToken }),
});
const revokedBy = Date.now() + 8000;
while (!(alice.states.producer === "failed" && alice.states.consumer === "failed") && Date.now() < revokedBy) await sleep(50);
await sleep(1000); // a wrong reconnect would show now

console.log(
  JSON.stringify({
    result: {
      rotated: before.refreshToken !== after.refreshToken && before.accessToken !== after.accessToken,
      delivered: got,
      states_after_refresh: statesAfterRefresh,
      reuse_status: reuse.status,
      states: states,
      final: alice.states,
    },
  }),
);
alice.close();
bob.close();
process.exit(0);
