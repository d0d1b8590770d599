// The frames the SDK writes and the connection query it opens the consumer with, one function
// each, following docs/protocol.md (with the issue 14 additions: `"wait":"stored"`, cursors
// given with the connection, `read_ok`).
import type { OutboxEntry } from "./store.js";
import type { ReadFrameOut, ReadOkFrame, ResumeFrame, SendFrame, TypingFrameOut } from "./types.js";

/** Most conversations one `resume` may name (`RTM_MAX_RESUME_CONVERSATIONS`, default 1000). */
export const MAX_RESUME_CONVERSATIONS = 1000;

/** The longest `cursors` query value the SDK puts in the consumer's URL by default. The server
 * takes up to `MAX_RESUME_CONVERSATIONS` there, but request lines are limited on the way (the
 * consumer's own parser takes 16 KiB of request; proxies often 4-8 KiB), and the protocol says
 * long lists belong in a `resume` frame: ~4,000 characters are about 90 conversations. */
export const MAX_URL_CURSORS_CHARS = 4000;

/** A `send` frame. `"wait":"stored"`: the ack comes once the consumer has stored the message in
 * PostgreSQL and carries its `seq`, so history read after `send()` resolves holds the message.
 * When that takes longer than the producer waits, the answer is `not_stored_yet` (transient:
 * the outbox resends the same `client_msg_id`, answered with the ack of the stored message). */
export function sendFrame(entry: OutboxEntry): SendFrame {
  return {
    type: "send",
    client_msg_id: entry.client_msg_id,
    conversation_id: entry.conversation_id,
    body: entry.body,
    wait: "stored",
  };
}

/** `resume` frames for `cursors`, at most `MAX_RESUME_CONVERSATIONS` each (`{}` when empty). */
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

/** How one consumer connection resumes (docs/protocol.md, §6 "Cursors with the connection"). */
export interface ResumePlan {
  /** Appended to the consumer's `/v1/ws` URL: `?cursors=<id>:<seq>,...` (`?cursors=` when there
   * is nothing to resume: live messages at once, no hold), or `?resume=1` when the cursors do
   * not fit in the URL (live messages are held until the first `resume` frame is handled). */
  query: string;
  /** The `resume` frames to write once the consumer says `ready`: none when the URL carries
   * the cursors. */
  frames: ResumeFrame[];
  /** The resumes the server will answer (`resumed`), in order, each as the frame that asks for
   * it again (after an `unavailable` answer, or a query the server refused). */
  expected: ResumeFrame[];
}

/** Cursors in the URL when they fit in `maxChars`, else every one in `resume` frames. All or
 * nothing: a connection that resumed part of its cursors from the URL would stop holding live
 * messages at that `resumed`, and the conversations of a later `resume` frame could then come
 * back `recovered: false` (paged from history instead). */
export function resumePlan(cursors: Record<string, number>, maxChars = MAX_URL_CURSORS_CHARS): ResumePlan {
  const value = Object.entries(cursors)
    .map(([id, seq]) => `${encodeURIComponent(id)}:${seq}`)
    .join(",");
  const ids = Object.keys(cursors).length;
  if (value.length <= maxChars && ids <= MAX_RESUME_CONVERSATIONS) {
    return { query: `?cursors=${value}`, frames: [], expected: [{ type: "resume", cursors: { ...cursors } }] };
  }
  const frames = resumeFrames(cursors);
  return { query: "?resume=1", frames, expected: frames };
}

/** Whether an error frame of the consumer refuses the connection's query (`cursors`,
 * `cursors.<id>`, `resume`): the server then holds live messages as for `?resume=1`, waiting
 * for the client's `resume` frame. */
export function refusesQuery(frame: { code: string; field?: string | null }): boolean {
  const field = frame.field ?? "";
  return frame.code === "validation_failed" && (field === "resume" || field === "cursors" || field.startsWith("cursors."));
}

/** A `read` marker frame; the producer answers `read_ok` (or an error frame, `ref` null). */
export function readFrame(conversationId: string, seq: number): ReadFrameOut {
  return { type: "read", conversation_id: conversationId, seq };
}

/** The reply to a `read`: `read_ok`, repeating its `conversation_id` and `seq`. */
export function isReadReply(frame: { type: string }): frame is ReadOkFrame {
  return frame.type === "read_ok";
}

export function typingFrame(conversationId: string): TypingFrameOut {
  return { type: "typing", conversation_id: conversationId };
}
