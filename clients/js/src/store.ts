/** Where the SDK keeps what must outlive the page or process: the outbox (sends not yet acked)
 * and the per-conversation cursors (the last `seq` delivered to the application). Everything is
 * scoped by user id, so one store can serve several accounts. */
export interface OutboxEntry {
  client_msg_id: string;
  conversation_id: string;
  body: string;
  /** Orders the outbox: entries are resent in the order `send()` was called. */
  order: number;
}

/** A key of `loadCursors` that is no conversation: the SDK's record that this user has connected
 * with this store before (see `Receiver`). It is kept with the cursors so that every `Store`,
 * the application's own included, keeps it without a new method; its value means nothing. */
export const CONNECTED_MARKER = "rtm:connected";

/** Cursors are per conversation id, plus `CONNECTED_MARKER`: a store keeps whatever key it is
 * given. */
export interface Store {
  loadOutbox(userId: string): Promise<OutboxEntry[]>;
  putOutbox(userId: string, entry: OutboxEntry): Promise<void>;
  deleteOutbox(userId: string, clientMsgId: string): Promise<void>;
  loadCursors(userId: string): Promise<Record<string, number>>;
  putCursor(userId: string, conversationId: string, seq: number): Promise<void>;
  deleteCursor(userId: string, conversationId: string): Promise<void>;
}

/** In memory: survives reconnects, not a reload. The default where IndexedDB is missing (Node). */
export class MemoryStore implements Store {
  private readonly outbox = new Map<string, Map<string, OutboxEntry>>();
  private readonly cursors = new Map<string, Map<string, number>>();

  private scoped<V>(map: Map<string, Map<string, V>>, userId: string): Map<string, V> {
    let inner = map.get(userId);
    if (!inner) map.set(userId, (inner = new Map()));
    return inner;
  }

  async loadOutbox(userId: string): Promise<OutboxEntry[]> {
    return [...this.scoped(this.outbox, userId).values()].sort((a, b) => a.order - b.order);
  }
  async putOutbox(userId: string, entry: OutboxEntry): Promise<void> {
    this.scoped(this.outbox, userId).set(entry.client_msg_id, { ...entry });
  }
  async deleteOutbox(userId: string, clientMsgId: string): Promise<void> {
    this.scoped(this.outbox, userId).delete(clientMsgId);
  }
  async loadCursors(userId: string): Promise<Record<string, number>> {
    return Object.fromEntries(this.scoped(this.cursors, userId));
  }
  async putCursor(userId: string, conversationId: string, seq: number): Promise<void> {
    this.scoped(this.cursors, userId).set(conversationId, seq);
  }
  async deleteCursor(userId: string, conversationId: string): Promise<void> {
    this.scoped(this.cursors, userId).delete(conversationId);
  }
}

const OUTBOX = "outbox";
const CURSORS = "cursors";

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** IndexedDB (browsers): the outbox and cursors survive a page reload, so a message sent just
 * before the reload is resent, with the same `client_msg_id`, by the next page's Client. */
export class IndexedDbStore implements Store {
  private db: Promise<IDBDatabase> | undefined;

  constructor(
    private readonly name = "rtm-client",
    private readonly factory: IDBFactory = globalThis.indexedDB,
  ) {
    if (!factory) throw new Error("IndexedDB is not available here: use MemoryStore");
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const request = this.factory.open(this.name, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore(OUTBOX, { keyPath: ["user", "client_msg_id"] });
        db.createObjectStore(CURSORS, { keyPath: ["user", "conversation_id"] });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return this.db;
  }

  private async tx<T>(
    name: string,
    mode: IDBTransactionMode,
    work: (store: IDBObjectStore) => IDBRequest<T>,
  ): Promise<T> {
    const db = await this.open();
    const transaction = db.transaction(name, mode);
    const result = done(work(transaction.objectStore(name)));
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
    return result;
  }

  private range(userId: string): IDBKeyRange {
    return IDBKeyRange.bound([userId], [userId, []]);
  }

  async loadOutbox(userId: string): Promise<OutboxEntry[]> {
    const rows = await this.tx(OUTBOX, "readonly", (s) => s.getAll(this.range(userId)));
    return (rows as (OutboxEntry & { user: string })[])
      .map(({ user: _user, ...entry }) => entry)
      .sort((a, b) => a.order - b.order);
  }
  async putOutbox(userId: string, entry: OutboxEntry): Promise<void> {
    await this.tx(OUTBOX, "readwrite", (s) => s.put({ ...entry, user: userId }));
  }
  async deleteOutbox(userId: string, clientMsgId: string): Promise<void> {
    await this.tx(OUTBOX, "readwrite", (s) => s.delete([userId, clientMsgId]));
  }
  async loadCursors(userId: string): Promise<Record<string, number>> {
    const rows = await this.tx(CURSORS, "readonly", (s) => s.getAll(this.range(userId)));
    const cursors: Record<string, number> = {};
    for (const row of rows as { conversation_id: string; seq: number }[]) {
      cursors[row.conversation_id] = row.seq;
    }
    return cursors;
  }
  async putCursor(userId: string, conversationId: string, seq: number): Promise<void> {
    await this.tx(CURSORS, "readwrite", (s) =>
      s.put({ user: userId, conversation_id: conversationId, seq }),
    );
  }
  async deleteCursor(userId: string, conversationId: string): Promise<void> {
    await this.tx(CURSORS, "readwrite", (s) => s.delete([userId, conversationId]));
  }
}

/** IndexedDB where there is one (browsers), else memory. */
export function defaultStore(): Store {
  return typeof globalThis.indexedDB === "undefined" ? new MemoryStore() : new IndexedDbStore();
}
