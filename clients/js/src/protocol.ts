// The frames the SDK writes, one function each. Each function is also the one place where a
// backwards-compatible protocol addition (being added on the server, issue 14) will be used once
// it lands; until then the SDK relies only on docs/protocol.md as it stands.
import type { OutboxEntry } from "./store.js";
import type { Ack, ReadFrameOut, ResumeFrame, SendFrame, TypingFrameOut } from "./types.js";

/** Most conversations one `resume` may name (`RTM_MAX_RESUME_CONVERSATIONS`, default 1000). */
export const MAX_RESUME_CONVERSATIONS = 1000;

/** A `send` frame. Addition to come: `"wait":"stored"`, so the ack carries `seq` — add it here
 * (and read it in `ackSeq`; its `not_stored_yet` error is already treated as transient). A
 * server that does not know `wait` would ignore it, but its acks would carry no `seq`: the SDK
 * asks only once the documented protocol has it. */
export function sendFrame(entry: OutboxEntry): SendFrame {
  return {
    type: "send",
    client_msg_id: entry.client_msg_id,
    conversation_id: entry.conversation_id,
    body: entry.body,
  };
}

/** The conversation position of an acked message, where the server tells it (`"wait":"stored"`). */
export function ackSeq(ack: Ack): number | undefined {
  return typeof ack.seq === "number" ? ack.seq : undefined;
}

/** The `resume` frames sent once the consumer says `ready` (today's protocol: always, `{}` when
 * there is nothing to resume, so that live messages are not held for the grace period).
 * Addition to come: cursors given with the connection itself — then this returns [] when
 * `connectionCursors` carried them. */
export function resumeFrames(cursors: Record<string, number>): ResumeFrame[] {
  const ids = Object.keys(cursors);
  if (ids.length === 0) return [{ type: "resume", cursors: {} }];
  const frames: ResumeFrame[] = [];
  for (let i = 0; i < ids.length; i += MAX_RESUME_CONVERSATIONS) {
    const chunk: Record<string, number> = {};
    for (const id of ids.slice(i, i + MAX_RESUME_CONVERSATIONS)) chunk[id] = cursors[id]!;
    frames.push({ type: "resume", cursors: chunk });
  }
  return frames;
}

/** Cursors to give with the consumer connection (addition to come); none today. */
export function connectionCursors(_cursors: Record<string, number>): undefined {
  return undefined;
}

/** A `read` marker frame. Addition to come: the server replies to it; today it is fire and
 * forget, so `markRead` resolves once the frame is written. */
export function readFrame(conversationId: string, seq: number): ReadFrameOut {
  return { type: "read", conversation_id: conversationId, seq };
}

/** Whether a frame from the producer is the reply to a `read` (addition to come, `read_ok`
 * with the `conversation_id` and `seq` of the `read`): never today. */
export function isReadReply(_frame: { type: string }): boolean {
  return false;
}

export function typingFrame(conversationId: string): TypingFrameOut {
  return { type: "typing", conversation_id: conversationId };
}
