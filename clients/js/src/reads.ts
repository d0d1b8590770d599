import { RtmError } from "./errors.js";
import { readFrame } from "./protocol.js";
import type { ReadOkFrame } from "./types.js";

interface Waiter {
  resolve: () => void;
  reject: (error: RtmError) => void;
}

/** The codes a refused `read` frame is answered with (docs/protocol.md, §5: `ref` null). */
const READ_REFUSALS: ReadonlySet<string> = new Set(["forbidden", "validation_failed", "rate_limited", "unavailable"]);

const key = (conversationId: string, seq: number): string => `${conversationId} ${seq}`;

/** Whether a failed `POST .../read` may succeed later (the marker is then kept for the socket). */
function transient(error: unknown): boolean {
  const e = error as RtmError;
  return e.code === "network" || e.code === "unavailable" || e.code === "rate_limited" || (e.status ?? 0) >= 500;
}

/** Read markers until the server has taken them (`markRead`). On the open producer socket a
 * `read` frame is answered `read_ok` (matched by conversation and seq). Without an open socket
 * the consumer's `POST /v1/conversations/{id}/read` stores it; so do reads whose socket went
 * down before their `read_ok`, and reads waiting when an error frame refused a `read` (its
 * `ref` is null, so which one is unknown: HTTP answers each, and re-marking is harmless, as a
 * marker never moves backwards). A marker HTTP could not store for a while (network, 503) waits
 * for the producer socket to open again, the highest per conversation. */
export class ReadMarkers {
  /** Written on the socket, waiting for their `read_ok`. */
  private readonly written = new Map<string, { conversationId: string; seq: number; waiters: Waiter[] }>();
  /** Waiting for the producer socket to open, per conversation (the highest seq). */
  private readonly parked = new Map<string, { seq: number; waiters: Waiter[] }>();

  constructor(
    /** Write a frame on the producer socket; false when it is not open. */
    private readonly write: (frame: object) => boolean,
    /** `POST /v1/conversations/{id}/read`. */
    private readonly post: (conversationId: string, seq: number) => Promise<unknown>,
    /** Whether a producer socket exists that will open (again): else nothing can be parked. */
    private readonly socketComing: () => boolean,
  ) {}

  mark(conversationId: string, seq: number): Promise<void> {
    return new Promise((resolve, reject) => this.send(conversationId, seq, [{ resolve, reject }]));
  }

  private send(conversationId: string, seq: number, waiters: Waiter[]): void {
    if (this.write(readFrame(conversationId, seq))) {
      const k = key(conversationId, seq);
      const entry = this.written.get(k) ?? { conversationId, seq, waiters: [] };
      entry.waiters.push(...waiters);
      this.written.set(k, entry);
    } else {
      void this.overHttp(conversationId, seq, waiters);
    }
  }

  private async overHttp(conversationId: string, seq: number, waiters: Waiter[]): Promise<void> {
    try {
      await this.post(conversationId, seq);
    } catch (error) {
      if (transient(error) && this.socketComing()) this.park(conversationId, seq, waiters);
      else for (const w of waiters) w.reject(error as RtmError);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  private park(conversationId: string, seq: number, waiters: Waiter[]): void {
    const parked = this.parked.get(conversationId) ?? { seq, waiters: [] };
    parked.seq = Math.max(parked.seq, seq); // markers only move forward: the highest covers all
    parked.waiters.push(...waiters);
    this.parked.set(conversationId, parked);
    this.opened(); // the socket may have opened while HTTP was failing
  }

  /** A `read_ok` from the producer. */
  onReadOk(frame: ReadOkFrame): void {
    const k = key(frame.conversation_id, frame.seq);
    const entry = this.written.get(k);
    if (!entry) return;
    this.written.delete(k);
    for (const w of entry.waiters) w.resolve();
  }

  /** An error frame with `ref` null from the producer; returns whether it was taken as the
   * refusal of a waiting `read` (then every waiting read asks HTTP instead). */
  onRefused(code: string): boolean {
    if (!READ_REFUSALS.has(code) || this.written.size === 0) return false;
    this.toHttp();
    return true;
  }

  /** The producer socket went down: its reads' `read_ok` will never come. */
  down(): void {
    this.toHttp();
  }

  /** The producer socket is open: write what was parked for it. */
  opened(): void {
    for (const [conversationId, parked] of [...this.parked]) {
      if (!this.write(readFrame(conversationId, parked.seq))) return;
      this.parked.delete(conversationId);
      const k = key(conversationId, parked.seq);
      const entry = this.written.get(k) ?? { conversationId, seq: parked.seq, waiters: [] };
      entry.waiters.push(...parked.waiters);
      this.written.set(k, entry);
    }
  }

  private toHttp(): void {
    const entries = [...this.written.values()];
    this.written.clear();
    for (const e of entries) void this.overHttp(e.conversationId, e.seq, e.waiters);
  }
}
