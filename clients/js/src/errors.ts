import type { ErrorCode } from "./types.js";

/** An answer of the server that refused something: an error frame, or an HTTP error body
 * (`{"error":{"code","message","field"?,"retry_after_ms"?}}`, docs/protocol.md, "7. Error codes"). */
export class RtmError extends Error {
  constructor(
    /** The protocol's error code, or the SDK's own: `network`, `closed`, `session_ended`,
     * `store_failed`. */
    readonly code: ErrorCode | "network" | "closed" | "session_ended" | "store_failed" | string,
    message: string,
    readonly status?: number,
    readonly field?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "RtmError";
  }
}

/** Error codes after which the same send, resent with the same `client_msg_id`, may succeed. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "unavailable",
  "rate_limited",
  "too_many_in_flight",
  // Answers a `"wait":"stored"` send (every send of the SDK) accepted but not seen stored in
  // PostgreSQL within the producer's wait: the message is not lost; resending the same id gets
  // the ack of the stored message.
  "not_stored_yet",
]);
