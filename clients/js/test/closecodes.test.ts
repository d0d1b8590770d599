// The close codes the services publish (the `x-close-codes` table of each AsyncAPI document, the
// same table as docs/protocol.md, "8. WebSocket close codes") against what the SDK does on each.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { closeAction, type CloseAction } from "../src/closecodes.js";

const api = new URL("../../api/", import.meta.url);

// What each "reconnect?" answer of the table means for a client.
const MEANING: Record<string, CloseAction> = {
  yes: "reconnect",
  "yes, with backoff": "reconnect",
  "yes, then `resume`": "reconnect",
  "yes, after a pause": "pause",
  no: "stop",
  "no (fix the client)": "stop",
  // 4500 invalid token: the table allows a new token, but the SDK never reconnects after it
  // (issue 14: never after 4500, 4501, 4503, 4504; refresh, then reconnect, after 4505 only).
  "no, with the same token": "stop",
  "after a refresh": "refresh",
};

function published(service: string): { code: number; reconnect: string }[] {
  const document = JSON.parse(readFileSync(new URL(`${service}.asyncapi.json`, api), "utf8"));
  return document.channels.ws["x-close-codes"];
}

for (const service of ["producer", "consumer"]) {
  test(`every close code of the ${service}'s AsyncAPI document is handled as it says`, () => {
    const table = published(service);
    assert.ok(table.length >= 16);
    for (const { code, reconnect } of table) {
      assert.ok(reconnect in MEANING, `an answer the SDK does not know: ${code} "${reconnect}"`);
      assert.equal(closeAction(code), MEANING[reconnect], `close code ${code} ("${reconnect}")`);
    }
  });
}

test("an abnormal closure (1006, no close frame: a crashed server) reconnects", () => {
  assert.equal(closeAction(1006), "reconnect");
});

test("issue 14: never reconnect after 4500, 4501, 4503, 4504; refresh then reconnect after 4505", () => {
  for (const code of [4500, 4501, 4503, 4504]) assert.equal(closeAction(code), "stop", String(code));
  assert.equal(closeAction(4505), "refresh");
});
