import { RtmError, TRANSIENT_CODES } from "./errors.js";
import { sendFrame } from "./protocol.js";
import type { OutboxEntry, Store } from "./store.js";
import type { Ack, ErrorFrame } from "./types.js";

interface Pending {
  entry: OutboxEntry;
  sent: boolean;
  /** False while `add` is still storing it: it must not be written before. */
  stored: boolean;
  writes: number;
  notBefore: number;
  promise: Promise<Ack>;
  resolve: (ack: Ack) => void;
  reject: (error: RtmError) => void;
}

export interface OutboxOptions {
  /** Sends written but not yet acked, at most (the server allows 64; default 32). */
  maxInFlight?: number | undefined;
  /** Frames per second and burst the producer allows per connection (20, 40): the outbox paces
   * itself below them instead of drawing `rate_limited` answers. */
  ratePerSecond?: number | undefined;
  rateBurst?: number | undefined;
}

/** Sends until they are acked. Every send is stored (Store) before it is written, keyed by its
 * `client_msg_id`; it is written again, with the same id, after every reconnect until its ack
 * comes, and a Client built over the same store (a reloaded page) resends what the last one left.
 * The server acks a resent id as `duplicate` with the original message id, so nothing is stored
 * twice. Entries are written in the order `send()` was called. */
export class Outbox {
  private readonly pending = new Map<string, Pending>();
  /** Sends written again (after a reconnect or a transient error), for diagnostics and tests. */
  resent = 0;
  private open = false;
  private tokens: number;
  private lastRefill = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private order = Date.now() * 1000;
  private readonly maxInFlight: number;
  private readonly rate: number;
  private readonly burst: number;

  constructor(
    private readonly store: Store,
    private readonly userId: string,
    private readonly write: (frame: object) => boolean,
    private readonly onAck: (ack: Ack, entry: OutboxEntry) => void,
    options: OutboxOptions = {},
  ) {
    this.maxInFlight = options.maxInFlight ?? 32;
    this.rate = options.ratePerSecond ?? 18;
    this.burst = options.rateBurst ?? 36;
    this.tokens = this.burst;
  }

  /** Entries a previous Client left in the store (a reload): resent first, in their order. */
  async restore(): Promise<void> {
    for (const p of this.pending.values()) p.sent = false; // a new socket: all to write again
    for (const entry of await this.store.loadOutbox(this.userId)) {
      if (!this.pending.has(entry.client_msg_id)) this.track(entry);
      this.order = Math.max(this.order, entry.order + 1);
    }
    this.pump();
  }

  async add(conversationId: string, body: string, clientMsgId: string): Promise<Ack> {
    const existing = this.pending.get(clientMsgId);
    if (existing) return existing.promise;
    const entry: OutboxEntry = {
      client_msg_id: clientMsgId,
      conversation_id: conversationId,
      body,
      order: this.order++,
    };
    const pending = this.track(entry);
    pending.stored = false;
    try {
      await this.store.putOutbox(this.userId, entry); // stored before it is ever written
    } catch (error) {
      this.pending.delete(clientMsgId); // not kept, so never sent: the caller hears why
      this.pump(); // the sends after it may go
      throw new RtmError("store_failed", `the outbox could not store the message: ${String(error)}`);
    }
    pending.stored = true;
    this.pump();
    return pending.promise;
  }

  private track(entry: OutboxEntry): Pending {
    let resolve!: (ack: Ack) => void;
    let reject!: (error: RtmError) => void;
    const promise = new Promise<Ack>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // restored entries have no caller awaiting them
    const pending: Pending = { entry, sent: false, stored: true, writes: 0, notBefore: 0, promise, resolve, reject };
    this.pending.set(entry.client_msg_id, pending);
    return pending;
  }

  /** What is waiting for an ack (for a UI's "sending..." state). */
  entries(): OutboxEntry[] {
    return [...this.pending.values()].map((p) => ({ ...p.entry }));
  }

  get size(): number {
    return this.pending.size;
  }

  connected(): void {
    this.open = true;
    this.pump();
  }

  disconnected(): void {
    this.open = false;
    for (const p of this.pending.values()) p.sent = false; // written again on the next socket
  }

  /** Take a token for a frame written outside the outbox (typing, read, ping). */
  spend(): void {
    this.refill();
    this.tokens = Math.max(-this.burst, this.tokens - 1);
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = now;
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.open) return;
    const now = Date.now();
    let inFlight = 0;
    for (const p of this.pending.values()) if (p.sent) inFlight++;
    let wakeAt = Infinity;
    for (const p of [...this.pending.values()].sort((a, b) => a.entry.order - b.entry.order)) {
      if (p.sent) continue;
      if (inFlight >= this.maxInFlight) break; // the next ack pumps again
      if (!p.stored) break; // `add` pumps once it is stored (nothing overtakes it)
      if (p.notBefore > now) {
        wakeAt = Math.min(wakeAt, p.notBefore);
        break; // keep the order: nothing overtakes an entry waiting to be retried
      }
      this.refill();
      if (this.tokens < 1) {
        wakeAt = Math.min(wakeAt, now + ((1 - this.tokens) / this.rate) * 1000);
        break;
      }
      if (!this.write(sendFrame(p.entry))) return;
      this.tokens -= 1;
      if (p.writes++ > 0) this.resent++;
      p.sent = true;
      inFlight++;
    }
    if (wakeAt !== Infinity) this.timer = setTimeout(() => this.pump(), Math.max(1, wakeAt - now));
  }

  handleAck(ack: Ack): void {
    const p = this.pending.get(ack.client_msg_id);
    if (!p) return; // an ack for a resend already acked: nothing left to do
    this.pending.delete(ack.client_msg_id);
    void this.store.deleteOutbox(this.userId, ack.client_msg_id).catch(() => undefined);
    p.resolve(ack);
    this.onAck(ack, p.entry);
    this.pump();
  }

  /** An error frame; returns whether it was about one of the outbox's sends. */
  handleError(frame: ErrorFrame): boolean {
    const ref = frame.ref ?? undefined;
    const p = ref === undefined ? undefined : this.pending.get(ref);
    if (!p) return false;
    if (TRANSIENT_CODES.has(frame.code)) {
      p.sent = false;
      p.notBefore = Date.now() + (frame.retry_after_ms ?? 1000);
      this.pump();
      return true;
    }
    // Refused for good (validation_failed, forbidden, ...): resending cannot help.
    this.pending.delete(p.entry.client_msg_id);
    void this.store.deleteOutbox(this.userId, p.entry.client_msg_id).catch(() => undefined);
    p.reject(new RtmError(frame.code, frame.message, undefined, frame.field ?? undefined));
    this.pump();
    return true;
  }

  /** Stop pacing timers (the entries stay in the store for the next Client). */
  stop(): void {
    this.open = false;
    clearTimeout(this.timer);
  }
}
