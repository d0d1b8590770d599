// The page's state with no DOM (src/state.ts): run by `npm test` (node's test runner).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ConversationSummary, Message } from "@rtm/client";
import { addMessage, byActivity, firstGap, newChat, outgoingOf, shown, type Outgoing } from "../src/state.js";

const ME = "me";
const summary = (id: string, extra: Partial<ConversationSummary> = {}): ConversationSummary => ({
  id,
  kind: "direct",
  title: null,
  members: [ME, "bob"],
  created_at: "2026-12-04T09:00:00.000Z",
  last_seq: 0,
  read_seq: 0,
  unread_count: 0,
  last_message: null,
  ...extra,
});
const message = (seq: number, sender = "bob", at = `2026-12-04T09:00:${String(seq).padStart(2, "0")}.000Z`): Message => ({
  message_id: `m${seq}`,
  conversation_id: "c",
  seq,
  sender_id: sender,
  body: `body ${seq}`,
  client_msg_id: `cm${seq}`,
  sent_at: at,
});

test("a message from someone else is unread; my own move my read marker", () => {
  const chat = newChat(summary("c"));
  addMessage(chat, message(1), ME);
  addMessage(chat, message(2), ME);
  assert.equal(chat.summary.unread_count, 2);
  addMessage(chat, message(3, ME), ME);
  assert.equal(chat.summary.read_seq, 3);
  assert.equal(chat.summary.unread_count, 0);
  assert.equal(chat.summary.last_message?.seq, 3);
});

test("a message delivered twice is shown once", () => {
  const chat = newChat(summary("c"));
  chat.loadedFrom = 1;
  for (const seq of [1, 2, 2, 3, 1]) addMessage(chat, message(seq), ME);
  assert.deepEqual(shown(chat).map((m) => m.seq), [1, 2, 3]);
});

test("only the range loaded from history is shown, and its holes are found", () => {
  const chat = newChat(summary("c"));
  for (const seq of [2, 5, 6, 7, 9]) addMessage(chat, message(seq), ME);
  assert.deepEqual(shown(chat), []); // nothing before the newest page is loaded
  chat.loadedFrom = 5;
  assert.deepEqual(shown(chat).map((m) => m.seq), [5, 6, 7, 9]);
  assert.deepEqual(firstGap(chat), { after: 7, before: 9 });
  addMessage(chat, message(8), ME);
  assert.equal(firstGap(chat), undefined);
});

test("my messages on their way are shown in order until their stored message is", () => {
  const chat = newChat(summary("c"));
  chat.loadedFrom = 1;
  const outgoing = new Map<string, Outgoing>();
  for (const [id, order] of [["cm2", 2], ["cm1", 1], ["other", 3]] as const) {
    const conversation = id === "other" ? "elsewhere" : "c";
    outgoing.set(id, { entry: { client_msg_id: id, conversation_id: conversation, body: id, order }, state: "sending" });
  }
  assert.deepEqual(outgoingOf(chat, outgoing).map((o) => o.entry.client_msg_id), ["cm1", "cm2"]);
  addMessage(chat, message(1, ME), ME); // client_msg_id cm1: stored
  assert.deepEqual(outgoingOf(chat, outgoing).map((o) => o.entry.client_msg_id), ["cm2"]);
});

test("conversations are listed newest activity first", () => {
  const quiet = newChat(summary("quiet", { created_at: "2026-12-04T08:00:00.000Z" }));
  const busy = newChat(summary("busy", { created_at: "2026-12-04T07:00:00.000Z" }));
  addMessage(busy, { ...message(1), conversation_id: "busy" }, ME);
  const fresh = newChat(summary("fresh", { created_at: "2026-12-04T09:30:00.000Z" }));
  assert.deepEqual(byActivity([quiet, busy, fresh]).map((c) => c.summary.id), ["fresh", "busy", "quiet"]);
});
