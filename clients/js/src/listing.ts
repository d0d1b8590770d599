import { backoffDelay } from "./backoff.js";
import type { RtmError } from "./errors.js";
import type { Receiver } from "./receiver.js";

/** What the receiver needs of a conversation of `GET /v1/conversations`. */
export interface Listed {
  id: string;
  last_seq: number;
}

/** Which conversations each consumer connection follows. The `conversation` event of a
 * conversation created (or joined) while no consumer socket of this user was open went nowhere,
 * and the connection's cursors cannot name what the client never heard of: without a list, its
 * messages before the next live one would never come as `message` events. So every consumer
 * connection takes the user's conversation list and follows those without a cursor
 * (`Receiver.adopt`):
 *
 * - a list the application asked for (`conversations()`) while no consumer socket was open, and
 *   with no socket gone down since, is applied just before the next socket is made: its new
 *   cursors go with the connection (resumed by the server), and no second request is made (the
 *   web page lists its conversations before `connect()`);
 * - otherwise the list is asked for once the socket is `ready` (so none created after it can be
 *   missed: their events come on that socket), and what the new conversations hold is paged from
 *   history. */
export class ConversationLists<T extends Listed = Listed> {
  /** Counts the consumer sockets gone down (and closes): a list is of one epoch. */
  private epoch = 0;
  private early: { conversations: readonly T[]; epoch: number } | undefined;
  /** The epoch whose connection has had its list applied. */
  private listedEpoch = -1;

  constructor(
    private readonly fetchList: () => Promise<T[]>,
    private readonly receiver: () => Receiver | undefined,
    /** A list this class asked for (after `ready`), before its conversations are followed: the
     * application learns of those created while it was away before their messages come. */
    private readonly onListed: (conversations: T[]) => void,
    private readonly onError: (error: RtmError) => void,
  ) {}

  /** Before an application's list request: the ticket to hand back with its answer, when the
   * answer may serve the next connection (no consumer socket open now). */
  ask(socketOpen: boolean): number | undefined {
    return socketOpen ? undefined : this.epoch;
  }

  answered(ticket: number | undefined, conversations: readonly T[]): void {
    if (ticket !== undefined && ticket === this.epoch) this.early = { conversations, epoch: ticket };
  }

  /** Just before a consumer socket is made (its cursors are read right after). */
  beforeSocket(): void {
    const early = this.early;
    this.early = undefined;
    if (!early || early.epoch !== this.epoch) return;
    this.receiver()?.adopt(early.conversations, false);
    this.listedEpoch = this.epoch;
  }

  /** The consumer socket is ready: list now unless this connection's list was applied. */
  opened(): void {
    if (this.listedEpoch === this.epoch) return;
    this.listedEpoch = this.epoch;
    void this.listAfterReady(this.epoch);
  }

  /** A consumer socket went down, the client closed, or someone signed in: the lists asked for
   * before are of the past. */
  reset(): void {
    this.epoch++;
    this.early = undefined;
  }

  private async listAfterReady(epoch: number): Promise<void> {
    const receiver = this.receiver(); // this user's, whoever signs in meanwhile
    for (let failures = 0; epoch === this.epoch; failures++) {
      try {
        // Applied even when the socket went down meanwhile (what it says still holds; the next
        // connection lists again): a first connection's list still marks the store connected.
        const conversations = await this.fetchList();
        this.onListed(conversations);
        receiver?.adopt(conversations, true);
        return;
      } catch (error) {
        const e = error as RtmError;
        if (e.status !== undefined && e.status < 500 && e.status !== 429) {
          if (e.code !== "session_ended") this.onError(e); // the session reports its own end
          return;
        }
        await new Promise((r) => setTimeout(r, e.retryAfterMs ?? backoffDelay(failures, { baseMs: 200, capMs: 5_000 })));
      }
    }
  }
}
