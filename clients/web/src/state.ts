// What the page knows, with no DOM: conversations, the messages loaded of each, and the user's
// own messages not stored yet. Rendering reads it; the SDK's events and HTTP answers write it.
import type { ConversationSummary, Message, OutboxEntry } from "@rtm/client";

/** One conversation. `messages` is keyed by `seq`, so a message delivered twice (live, then by
 * history after a reload) is shown once; only `seq >= loadedFrom` is shown: that range has no
 * holes (history pages and the SDK's gap-free delivery fill it from the newest down). */
export interface Chat {
  summary: ConversationSummary;
  messages: Map<number, Message>;
  /** The oldest seq of the shown range; undefined until the newest history page is loaded. */
  loadedFrom: number | undefined;
  /** Whether history holds messages older than `loadedFrom`. */
  hasMore: boolean;
  /** The other members' read markers, from `read` events. */
  readBy: Map<string, number>;
  /** Members typing now: user id → when the indicator goes. */
  typing: Map<string, number>;
}

/** A message of this user on its way: `saving` until the SDK's outbox has stored it (IndexedDB,
 * so a reload resends it), `sending` until acked, `sent` once JetStream has it; it goes once the
 * stored message (with its `seq`) is there. */
export interface Outgoing {
  entry: OutboxEntry;
  state: "saving" | "sending" | "sent";
}

export function newChat(summary: ConversationSummary): Chat {
  return {
    summary,
    messages: new Map(),
    loadedFrom: undefined,
    hasMore: false,
    readBy: new Map(),
    typing: new Map(),
  };
}

/** Add a stored message; keeps the summary's head, last message and unread count in step. */
export function addMessage(chat: Chat, message: Message, me: string): void {
  chat.messages.set(message.seq, message);
  const summary = chat.summary;
  if (message.seq >= summary.last_seq) {
    summary.last_seq = message.seq;
    summary.last_message = message;
  }
  if (message.sender_id === me) summary.read_seq = Math.max(summary.read_seq, message.seq);
  summary.unread_count = Math.max(0, summary.last_seq - summary.read_seq);
  chat.typing.delete(message.sender_id);
}

/** The messages shown, ascending by seq. */
export function shown(chat: Chat): Message[] {
  const from = chat.loadedFrom ?? Infinity;
  return [...chat.messages.values()].filter((m) => m.seq >= from).sort((a, b) => a.seq - b.seq);
}

/** The first hole in the shown range: fetch `after < seq < before` to fill it. */
export function firstGap(chat: Chat): { after: number; before: number } | undefined {
  const seqs = shown(chat).map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i]! !== seqs[i - 1]! + 1) return { after: seqs[i - 1]!, before: seqs[i]! };
  }
  return undefined;
}

/** The newest seq shown (what to mark read). */
export function newestShown(chat: Chat): number {
  let newest = 0;
  for (const seq of chat.messages.keys()) if (seq >= (chat.loadedFrom ?? Infinity)) newest = Math.max(newest, seq);
  return newest;
}

/** This user's messages of `chat` not yet stored, in the order they were sent: those whose
 * stored message is shown are left out (the stored one is shown instead). */
export function outgoingOf(chat: Chat, outgoing: Map<string, Outgoing>): Outgoing[] {
  const stored = new Set([...chat.messages.values()].map((m) => m.client_msg_id));
  return [...outgoing.values()]
    .filter((o) => o.entry.conversation_id === chat.summary.id && !stored.has(o.entry.client_msg_id))
    .sort((a, b) => a.entry.order - b.entry.order);
}

/** Newest activity first, like `GET /v1/conversations`. */
export function byActivity(chats: Iterable<Chat>): Chat[] {
  const at = (c: Chat): string => c.summary.last_message?.sent_at ?? c.summary.created_at;
  return [...chats].sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}
