import { backoffDelay } from "./backoff.js";
import { CONNECTED_MARKER, type Store } from "./store.js";
import type { ConversationEvent, Message, MessagePage, ResumedFrame } from "./types.js";

export type HistoryFetch = (conversationId: string, afterSeq: number, limit: number) => Promise<MessagePage>;

interface CatchUp {
  buffer: Map<number, Message>;
}

/** Delivers each conversation's messages to the application exactly once, in `seq` order, from
 * three sources: the live stream, `resume`, and history paging. The cursor of a conversation is
 * the last `seq` delivered; it is persisted (Store) and sent in `resume` after every reconnect.
 * A message at or below the cursor is a duplicate and dropped; one past `cursor + 1` (a gap) is
 * held while history fills the gap, which is also how `recovered: false` is handled. */
export class Receiver {
  private readonly cursors = new Map<string, number>();
  private readonly catching = new Map<string, CatchUp>();
  private closed = false;
  /** This user has connected with this store before (its marker or any cursor is stored, or a
   * conversation list was applied since): a conversation without a cursor is then one created,
   * or joined, while no socket was there to hear of it, and all its messages are still to be
   * delivered. Before that (a first-ever connection over an empty store) the conversations
   * found start at their current head: their older messages are history, not events. */
  private connectedBefore = false;
  private markerStored = false;
  private readonly dirty = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Messages dropped as already delivered (resends at a seam), for diagnostics and tests. */
  duplicates = 0;

  constructor(
    private readonly store: Store,
    private readonly userId: string,
    private readonly history: HistoryFetch,
    private readonly deliver: (message: Message) => void,
    private readonly pageSize = 200,
  ) {}

  async restore(): Promise<void> {
    const saved = await this.store.loadCursors(this.userId);
    for (const [id, seq] of Object.entries(saved)) {
      if (id === CONNECTED_MARKER) this.markerStored = this.connectedBefore = true;
      else if (seq > (this.cursors.get(id) ?? -1)) this.cursors.set(id, seq);
    }
    if (this.cursors.size > 0) this.connectedBefore = true;
  }

  /** Follow each listed conversation (`GET /v1/conversations`, at a consumer connection) that
   * has no cursor: from 0 once this user has connected before, else from its `last_seq`. With
   * `fill`, what it holds up to `last_seq` is paged from history now (the list came after the
   * socket's cursors were given); without, the caller resumes the new cursors. Then stores the
   * marker that tells the next connection over this store it is not the first. */
  adopt(conversations: readonly { id: string; last_seq: number }[], fill: boolean): void {
    for (const conversation of conversations) {
      if (this.cursors.has(conversation.id)) continue;
      const from = this.connectedBefore ? 0 : conversation.last_seq;
      this.setCursor(conversation.id, from);
      if (fill && conversation.last_seq > from) this.catchUp(conversation.id);
    }
    this.connectedBefore = true;
    if (this.markerStored) return;
    this.markerStored = true;
    this.flush(); // the cursors first: a marker without them would replay these from 0
    void this.store.putCursor(this.userId, CONNECTED_MARKER, 1).catch(() => {
      this.markerStored = false; // the next list tries again
    });
  }

  /** The cursors to `resume` from. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.cursors);
  }

  cursor(conversationId: string): number | undefined {
    return this.cursors.get(conversationId);
  }

  /** Start following a conversation from `seq` (messages after it will be delivered). */
  follow(conversationId: string, seq: number): void {
    if (this.cursors.has(conversationId)) return;
    this.setCursor(conversationId, seq);
  }

  forget(conversationId: string): void {
    this.cursors.delete(conversationId);
    this.dirty.delete(conversationId);
    this.catching.delete(conversationId);
    void this.store.deleteCursor(this.userId, conversationId).catch(() => undefined);
  }

  private setCursor(conversationId: string, seq: number): void {
    this.cursors.set(conversationId, seq);
    this.dirty.add(conversationId);
    // One write per conversation per burst, not per message (an IndexedDB transaction each).
    this.flushTimer ??= setTimeout(() => this.flush(), 50);
  }

  /** Write the cursors that moved since the last flush. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const id of this.dirty) {
      const seq = this.cursors.get(id);
      if (seq !== undefined) void this.store.putCursor(this.userId, id, seq).catch(() => undefined);
    }
    this.dirty.clear();
  }

  onMessage(message: Message): void {
    const id = message.conversation_id;
    let cursor = this.cursors.get(id);
    if (cursor === undefined) {
      if (!this.connectedBefore) {
        // A first-ever connection, its conversation list not applied yet: as for the
        // conversations the list will bring, what came before is history.
        this.setCursor(id, message.seq);
        this.deliver(message);
        return;
      }
      // Created or joined while no socket of ours was there (its `conversation` event lost):
      // its earlier messages are filled from history first.
      this.setCursor(id, 0);
      cursor = 0;
    }
    if (message.seq <= cursor) {
      this.duplicates++;
      return;
    }
    const catching = this.catching.get(id);
    if (!catching && message.seq === cursor + 1) {
      this.setCursor(id, message.seq);
      this.deliver(message);
      return;
    }
    this.catchUp(id).buffer.set(message.seq, message);
  }

  onResumed(frame: ResumedFrame): void {
    for (const [id, state] of Object.entries(frame.conversations)) {
      const error = (state as { error?: string }).error;
      if (error === "forbidden") this.forget(id);
      else if (!state.recovered) this.catchUp(id);
    }
  }

  onConversation(event: ConversationEvent): void {
    const conversation = event.conversation;
    if (event.event === "created") {
      // A new conversation: follow it from its first message, whichever way that comes.
      this.follow(conversation.id, 0);
      if (conversation.last_seq > (this.cursors.get(conversation.id) ?? 0)) this.catchUp(conversation.id);
    } else if (event.event === "member_added") {
      // Joined an existing one: live from its current head; older messages are history.
      this.follow(conversation.id, conversation.last_seq);
    }
  }

  /** Start (or join) filling a conversation's gap from history. */
  catchUp(id: string): CatchUp {
    let state = this.catching.get(id);
    if (state) return state;
    state = { buffer: new Map() };
    this.catching.set(id, state);
    void this.fill(id, state);
    return state;
  }

  private async fill(id: string, state: CatchUp): Promise<void> {
    let failures = 0;
    let idle = 0;
    while (!this.closed && this.catching.get(id) === state) {
      const before = this.cursors.get(id) ?? 0;
      let page: MessagePage;
      try {
        page = await this.history(id, before, this.pageSize);
        failures = 0;
      } catch (error) {
        if ((error as { code?: unknown }).code === "forbidden") {
          // Not (or no longer) a member, or no such conversation: no retry will change that
          // (a new membership comes with a `conversation` event, or the next connection's list).
          if (this.catching.get(id) === state) this.forget(id);
          return;
        }
        await sleep(backoffDelay(failures++, { baseMs: 200, capMs: 5_000 }));
        continue;
      }
      if (this.catching.get(id) !== state) return;
      for (const message of page.messages) this.advance(id, message);
      this.drain(id, state);
      if (state.buffer.size === 0 && !page.has_more) {
        this.catching.delete(id);
        return;
      }
      if (!page.has_more && this.cursors.get(id) === before) {
        // The live message ahead of us is not in history yet (stored a moment ago): wait.
        await sleep(Math.min(2_000, 50 * 2 ** idle++));
      } else {
        idle = 0;
      }
    }
  }

  private advance(id: string, message: Message): void {
    const cursor = this.cursors.get(id) ?? 0;
    if (message.seq === cursor + 1) {
      this.setCursor(id, message.seq);
      this.deliver(message);
    } else if (message.seq <= cursor) {
      this.duplicates++;
    }
  }

  private drain(id: string, state: CatchUp): void {
    for (;;) {
      const cursor = this.cursors.get(id) ?? 0;
      for (const seq of [...state.buffer.keys()]) if (seq <= cursor) state.buffer.delete(seq);
      const next = state.buffer.get(cursor + 1);
      if (!next) return;
      state.buffer.delete(cursor + 1);
      this.advance(id, next);
    }
  }

  stop(): void {
    this.closed = true;
    this.flush();
  }

  /** Run again after `stop()`: catch-ups that were under way go on (a fresh loop each; the old
   * ones see they were replaced and end). */
  start(): void {
    this.closed = false;
    for (const [id, old] of this.catching) {
      const state: CatchUp = { buffer: old.buffer };
      this.catching.set(id, state);
      void this.fill(id, state);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
