/** Reconnect delays: exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): a random delay in [0, min(cap, base * 2^attempt)). Full jitter spreads
 * the clients of a restarted server over the whole window instead of letting them return in
 * waves. */
export interface BackoffOptions {
  /** First window, ms (default 250). */
  baseMs?: number;
  /** Largest window, ms (default 5 000, as Socket.IO: a restarted server is found within ~5 s). */
  capMs?: number;
}

export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 250;
  const cap = options.capMs ?? 5_000;
  const window = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * window);
}
