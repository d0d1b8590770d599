import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_URL_CURSORS_CHARS, refusesQuery, resumePlan, sendFrame } from "../src/protocol.js";

const A = "0195f3a1-0a2b-7c3d-8e4f-000000000001";
const B = "0195f3a1-0a2b-7c3d-8e4f-000000000002";

test("no cursors: ?cursors= (live at once, no hold), no frame, one resumed expected", () => {
  assert.deepEqual(resumePlan({}), { query: "?cursors=", frames: [], expected: [{ type: "resume", cursors: {} }] });
});

test("cursors that fit go in the URL as id:seq pairs, comma-separated", () => {
  const plan = resumePlan({ [A]: 0, [B]: 41 });
  assert.equal(plan.query, `?cursors=${A}:0,${B}:41`);
  assert.deepEqual(plan.frames, []);
  assert.deepEqual(plan.expected, [{ type: "resume", cursors: { [A]: 0, [B]: 41 } }]);
});

test("the limit counts the query value: exactly at it fits, one character more goes to frames", () => {
  const length = `${A}:7,${B}:41`.length;
  assert.equal(resumePlan({ [A]: 7, [B]: 41 }, length).query.startsWith("?cursors="), true);
  const over = resumePlan({ [A]: 7, [B]: 41 }, length - 1);
  assert.equal(over.query, "?resume=1");
  assert.deepEqual(over.frames, [{ type: "resume", cursors: { [A]: 7, [B]: 41 } }]);
  assert.deepEqual(over.expected, over.frames);
  assert.equal(MAX_URL_CURSORS_CHARS, 4000);
});

test("only a refusal naming the query's fields counts as refusing the URL's cursors", () => {
  assert.equal(refusesQuery({ code: "validation_failed", field: "cursors" }), true);
  assert.equal(refusesQuery({ code: "validation_failed", field: `cursors.${A}` }), true);
  assert.equal(refusesQuery({ code: "validation_failed", field: "resume" }), true);
  assert.equal(refusesQuery({ code: "validation_failed", field: "seq" }), false);
  assert.equal(refusesQuery({ code: "unavailable", field: null }), false);
});

test("every send frame asks to be acked once stored", () => {
  assert.equal(sendFrame({ client_msg_id: "c", conversation_id: A, body: "b", order: 1 }).wait, "stored");
});
