/** What a WebSocket close code tells the client to do, from docs/protocol.md, "8. WebSocket close codes" (the table is
 * the contract; `test/closecodes.test.ts` holds this function to it code by code).
 *
 * - `reconnect`: with backoff (1000, 1001, 1006 no close frame, 1011, 1012, 4008 then `resume`).
 * - `pause`: reconnect, but not before a pause (4013 sustained flood).
 * - `refresh`: refresh the access token first, then reconnect (4505 token expired).
 * - `stop`: never reconnect (1003, 1007, 1008, 1009, 4500, 4501, 4502, 4503, 4504). 4500
 *   (invalid token) is final too (issue 14): the table's "no, with the same token" would allow
 *   a refreshed one, but a token the server calls invalid (not expired: that is 4505) means a
 *   broken or foreign session, and a refresh-and-retry only hides it.
 */
export type CloseAction = "reconnect" | "pause" | "refresh" | "stop";

const STOP = new Set([1003, 1007, 1008, 1009, 4500, 4501, 4502, 4503, 4504]);

export function closeAction(code: number): CloseAction {
  if (STOP.has(code)) return "stop";
  if (code === 4505) return "refresh";
  if (code === 4013) return "pause";
  return "reconnect"; // 1000, 1001, 1005, 1006, 1011, 1012, 4008, and anything unknown
}

/** How long to wait after 4013 (a sustained flood) before reconnecting. */
export const FLOOD_PAUSE_MS = 10_000;
