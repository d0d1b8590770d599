/// <reference types="node" />
// Node-only additions, a separate entry point (`@rtm/client/node`) so that browser bundles never
// see `node:fs`.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { OutboxEntry, Store } from "./store.js";

interface FileState {
  outbox: Record<string, Record<string, OutboxEntry>>;
  cursors: Record<string, Record<string, number>>;
}

/** The outbox and cursors in one JSON file, so that a Node process that restarts resends what
 * it had not got acked and resumes where it was (what IndexedDB does for a browser page). Every
 * change rewrites the file (to a temporary name, then renamed over it: a crash leaves the old
 * or the new file, never half of one); changes are written one at a time, in order. Meant for
 * bots and services with modest volumes, not for thousands of messages a second. */
export class FileStore implements Store {
  private state: Promise<FileState> | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly path: string) {}

  private load(): Promise<FileState> {
    this.state ??= readFile(this.path, "utf8").then(
      (text) => JSON.parse(text) as FileState,
      (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return { outbox: {}, cursors: {} };
        throw error;
      },
    );
    return this.state;
  }

  private async change(apply: (state: FileState) => void): Promise<void> {
    const state = await this.load();
    apply(state);
    const text = JSON.stringify(state);
    const write = this.writing.then(async () => {
      await mkdir(dirname(this.path), { recursive: true });
      const temporary = `${this.path}.${process.pid}.tmp`;
      await writeFile(temporary, text);
      await rename(temporary, this.path);
    });
    this.writing = write.catch(() => undefined);
    return write;
  }

  async loadOutbox(userId: string): Promise<OutboxEntry[]> {
    const state = await this.load();
    return Object.values(state.outbox[userId] ?? {}).sort((a, b) => a.order - b.order);
  }
  putOutbox(userId: string, entry: OutboxEntry): Promise<void> {
    return this.change((s) => {
      (s.outbox[userId] ??= {})[entry.client_msg_id] = { ...entry };
    });
  }
  deleteOutbox(userId: string, clientMsgId: string): Promise<void> {
    return this.change((s) => {
      delete s.outbox[userId]?.[clientMsgId];
    });
  }
  async loadCursors(userId: string): Promise<Record<string, number>> {
    return { ...((await this.load()).cursors[userId] ?? {}) };
  }
  putCursor(userId: string, conversationId: string, seq: number): Promise<void> {
    return this.change((s) => {
      (s.cursors[userId] ??= {})[conversationId] = seq;
    });
  }
  deleteCursor(userId: string, conversationId: string): Promise<void> {
    return this.change((s) => {
      delete s.cursors[userId]?.[conversationId];
    });
  }
}
