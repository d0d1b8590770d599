import type { ErrorCode } from "./types.js";

/** An answer of the server that refused something: an error frame, or an HTTP error body
 * (`{"error":{"code","message","field"?,"retry_after_ms"?}}`, docs/protocol.md §7). */
export class RtmError extends Error {
  constructor(
    readonly code: ErrorCode | "network" | "closed" | "session_ended" | string,
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
]);
