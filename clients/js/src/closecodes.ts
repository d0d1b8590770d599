/** What a WebSocket close code tells the client to do, from docs/protocol.md, "8. WebSocket close codes" (the table is
 * the contract; `test/closecodes.test.ts` holds this function to it code by code).
 *
 * - `reconnect`: with backoff (1000, 1001, 1006 no close frame, 1011, 1012, 4008 then `resume`).
 * - `pause`: reconnect, but not before a pause (4013 sustained flood).
 * - `refresh`: refresh the access token first, then reconnect (4505 token expired).
 * - `refresh-once`: 4500 invalid token: never again with the same token; the SDK refreshes once
 *   and reconnects only with the new token (a second 4500 before `ready` is final).
 * - `stop`: never reconnect (1003, 1007, 1008, 1009, 4501, 4502, 4503, 4504).
 */
export type CloseAction = "reconnect" | "pause" | "refresh" | "refresh-once" | "stop";

const STOP = new Set([1003, 1007, 1008, 1009, 4501, 4502, 4503, 4504]);

export function closeAction(code: number): CloseAction {
  if (STOP.has(code)) return "stop";
  if (code === 4505) return "refresh";
  if (code === 4500) return "refresh-once";
  if (code === 4013) return "pause";
  return "reconnect"; // 1000, 1001, 1005, 1006, 1011, 1012, 4008, and anything unknown
}

/** How long to wait after 4013 (a sustained flood) before reconnecting. */
export const FLOOD_PAUSE_MS = 10_000;
