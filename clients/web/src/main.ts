// rtm's web chat page: the SDK (clients/js) does sending, receiving, reconnecting, resuming and
// token refresh; this file only shows what it reports and turns clicks into SDK calls.
import {
  Client,
  IndexedDbStore,
  RtmError,
  type ConnectionStates,
  type ConversationSummary,
  type Message,
  type OutboxEntry,
  type Store,
  type User,
} from "@rtm/client";
import {
  addMessage,
  byActivity,
  firstGap,
  newChat,
  newestShown,
  outgoingOf,
  shown,
  type Chat,
  type Outgoing,
} from "./state.js";

// Messages per history page; `?page=N` (1-200) sets it, to try scrolling back on a short chat.
const PAGE = Math.min(200, Math.max(1, Number(new URLSearchParams(location.search).get("page")) || 40));
const TYPING_SHOWN_MS = 4000; // the server sends `typing` at most once a second per sender
// Say "typing" at most this often while keys are pressed: the producer drops a second one within
// 1 s (RTM_TYPING_INTERVAL_S), so one just after that still gets through to keep it shown.
const TYPING_EVERY_MS = 1100;
const REFRESH_KEY = "rtm.refresh"; // per tab: a refresh token works once, two tabs would clash

interface PageConfig {
  producerUrls: string[];
  consumerUrls: string[];
}

/** A user as the page uses it. (The SDK's `User`, generated from auth's OpenAPI document, has
 * untyped fields: `UserOut` declares no types.) */
interface Person {
  id: string;
  username: string;
}

const person = (user: User): Person => ({ id: String(user.id), username: String(user.username) });

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** The SDK's IndexedDB store, telling the page when a send is stored (from then on a reload
 * resends it), so the page can show "saving" apart from "sending". */
class ObservedStore implements Store {
  private readonly inner = new IndexedDbStore("rtm-web");
  constructor(
    private readonly onSaved: (entry: OutboxEntry) => void,
    private readonly onLoaded: (entries: OutboxEntry[]) => void,
  ) {}
  async loadOutbox(userId: string): Promise<OutboxEntry[]> {
    const entries = await this.inner.loadOutbox(userId);
    this.onLoaded(entries);
    return entries;
  }
  async putOutbox(userId: string, entry: OutboxEntry): Promise<void> {
    await this.inner.putOutbox(userId, entry);
    this.onSaved(entry);
  }
  deleteOutbox(userId: string, clientMsgId: string): Promise<void> {
    return this.inner.deleteOutbox(userId, clientMsgId);
  }
  loadCursors(userId: string): Promise<Record<string, number>> {
    return this.inner.loadCursors(userId);
  }
  putCursor(userId: string, conversationId: string, seq: number): Promise<void> {
    return this.inner.putCursor(userId, conversationId, seq);
  }
  deleteCursor(userId: string, conversationId: string): Promise<void> {
    return this.inner.deleteCursor(userId, conversationId);
  }
}

class ChatPage {
  private readonly client: Client;
  private me: Person | undefined;
  private readonly chats = new Map<string, Chat>();
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly users = new Map<string, Promise<Person | undefined>>();
  private readonly names = new Map<string, string>();
  private readonly online = new Set<string>();
  private readonly summaryFetches = new Map<string, Promise<void>>();
  private current: string | undefined;
  private connectedOnce = false;
  private loadingOlder = false;
  private lastTyping = 0;

  constructor(private readonly config: PageConfig) {
    this.client = new Client({
      authUrl: location.origin,
      producerUrl: config.producerUrls,
      consumerUrl: config.consumerUrls,
      store: new ObservedStore(
        (entry) => this.onSaved(entry),
        // What the last page left unacked, resent now (shown as `data-restored` for the curious).
        (entries) => (document.body.dataset.restored = String(entries.length)),
      ),
    });
    this.client.on("tokens", (tokens) => {
      if (tokens.refreshToken) sessionStorage.setItem(REFRESH_KEY, tokens.refreshToken);
    });
    this.client.on("state", (states, detail) => this.onState(states, detail));
    this.client.on("message", (message) => this.onMessage(message));
    this.client.on("ack", (ack) => {
      const o = this.outgoing.get(ack.client_msg_id);
      if (o) o.state = "sent";
      this.renderSoon();
    });
    this.client.on("typing", (e) => {
      if (e.user_id === this.me?.id) return;
      this.chats.get(e.conversation_id)?.typing.set(e.user_id, Date.now() + TYPING_SHOWN_MS);
      void this.name(e.user_id).then(() => this.renderSoon());
      setTimeout(() => this.renderSoon(), TYPING_SHOWN_MS + 50);
    });
    this.client.on("read", (e) => {
      const chat = this.chats.get(e.conversation_id);
      if (!chat) return;
      if (e.user_id === this.me?.id) {
        chat.summary.read_seq = Math.max(chat.summary.read_seq, e.seq); // another tab read it
        chat.summary.unread_count = Math.max(0, chat.summary.last_seq - chat.summary.read_seq);
      } else {
        chat.readBy.set(e.user_id, Math.max(chat.readBy.get(e.user_id) ?? 0, e.seq));
      }
      this.renderSoon();
    });
    this.client.on("presence", (e) => {
      if (e.status === "online") this.online.add(e.user_id);
      else this.online.delete(e.user_id);
      this.renderSoon();
    });
    this.client.on("conversation", (e) => {
      const id = e.conversation.id;
      if (e.event === "member_removed" && !e.conversation.members.includes(this.me?.id ?? "")) {
        this.chats.delete(id);
        if (this.current === id) this.current = undefined;
        this.renderSoon();
      } else {
        void this.refreshSummary(id);
      }
    });
    // After a reconnect the SDK lists the conversations (to follow those created or joined while
    // the page was disconnected): the list picks them up before their messages come.
    this.client.on("listed", (summaries) => {
      for (const summary of summaries) this.upsert(summary);
      this.renderSoon();
    });
    this.client.on("error", (error) => {
      console.warn("rtm:", error.code, error.message);
      if (error.code === "session_ended") this.signedOut("Your session has ended: log in again.");
    });
    document.addEventListener("visibilitychange", () => this.markReadIfSeen());
  }

  // -- signing in -----------------------------------------------------------------------------

  async boot(): Promise<void> {
    this.bindForms();
    const saved = sessionStorage.getItem(REFRESH_KEY);
    if (!saved) return this.showLogin();
    try {
      await this.client.resumeSession(saved);
    } catch {
      sessionStorage.removeItem(REFRESH_KEY);
      return this.showLogin();
    }
    await this.start();
  }

  private showLogin(message = ""): void {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("banner").hidden = true;
  }

  private async start(): Promise<void> {
    $("login").hidden = true;
    $("app").hidden = false;
    this.banner("Connecting…");
    this.me = person(await this.client.me());
    this.names.set(this.me.id, this.me.username);
    $("me-name").textContent = this.me.username;
    // The list first, so that what `connect` delivers finds its conversation. The SDK follows
    // this same list on its first connection (conversations new to it) instead of asking again.
    for (const summary of await this.client.conversations()) this.upsert(summary);
    await this.client.connect();
    for (const entry of this.client.pending()) {
      this.outgoing.set(entry.client_msg_id, { entry, state: "sending" }); // the last page's
    }
    document.body.dataset.ready = "true";
    this.render();
  }

  private signedOut(message: string): void {
    sessionStorage.removeItem(REFRESH_KEY);
    this.client.close();
    // The next sign-in may be someone else's: nothing of this user's stays on the page.
    this.chats.clear();
    this.outgoing.clear();
    this.online.clear();
    this.current = undefined;
    this.connectedOnce = false;
    delete document.body.dataset.ready;
    this.showLogin(message);
  }

  private bindForms(): void {
    const credentials = (): [string, string] => [
      ($("username") as HTMLInputElement).value.trim(),
      ($("password") as HTMLInputElement).value,
    ];
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.signIn(...credentials(), false);
    });
    $("register-button").addEventListener("click", () => {
      if (($("login-form") as HTMLFormElement).reportValidity()) void this.signIn(...credentials(), true);
    });
    $("logout").addEventListener("click", () => {
      void this.client.logout().finally(() => location.reload());
      sessionStorage.removeItem(REFRESH_KEY);
    });
    $("new-direct").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create("direct");
    });
    $("new-group").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create("group");
    });
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    $("text").addEventListener("input", () => {
      if (this.current && Date.now() - this.lastTyping > TYPING_EVERY_MS) {
        this.lastTyping = Date.now();
        this.client.typing(this.current);
      }
    });
    $("messages").addEventListener("scroll", () => {
      if ($("messages").scrollTop < 80) void this.loadOlder();
    });
  }

  private async signIn(username: string, password: string, register: boolean): Promise<void> {
    try {
      if (register) await this.client.register(username, password);
      await this.client.login(username, password);
    } catch (error) {
      $("login-error").textContent = describe(error);
      return;
    }
    await this.start().catch((error: unknown) => this.banner(`Could not connect: ${describe(error)}`, true));
  }

  // -- the SDK's events -----------------------------------------------------------------------

  private onState(states: ConnectionStates, detail: { code?: number; reason?: string }): void {
    const all = [states.producer, states.consumer];
    if (all.includes("failed")) {
      const why = `${detail.code ?? ""} ${detail.reason ?? ""}`.trim();
      this.banner(`Disconnected${why ? ` (${why})` : ""}. Reload the page to connect again.`, true);
    } else if (all.every((s) => s === "open")) {
      this.connectedOnce = true;
      this.banner("");
    } else if (this.connectedOnce && all.some((s) => s === "reconnecting" || s === "connecting")) {
      this.banner("Connection lost: reconnecting… (messages you send are kept and sent once back)");
    }
  }

  private banner(text: string, failed = false): void {
    const banner = $("banner");
    banner.textContent = text;
    banner.hidden = text === "";
    banner.classList.toggle("failed", failed);
  }

  private onSaved(entry: OutboxEntry): void {
    const o = this.outgoing.get(entry.client_msg_id);
    if (o && o.state === "saving") o.state = "sending";
    this.renderSoon();
  }

  private onMessage(message: Message): void {
    const chat = this.chats.get(message.conversation_id);
    if (chat) return this.deliver(chat, message);
    // A conversation the list does not have yet (created a moment ago): fetch it first.
    void this.refreshSummary(message.conversation_id).then(() => {
      const fetched = this.chats.get(message.conversation_id);
      if (fetched) this.deliver(fetched, message);
    });
  }

  private deliver(chat: Chat, message: Message): void {
    addMessage(chat, message, this.me?.id ?? "");
    this.outgoing.delete(message.client_msg_id); // stored: shown as such from now on
    void this.name(message.sender_id);
    if (chat.summary.id === this.current) this.markReadIfSeen();
    this.renderSoon();
  }

  // -- conversations --------------------------------------------------------------------------

  private upsert(summary: ConversationSummary): Chat {
    let chat = this.chats.get(summary.id);
    if (!chat) {
      chat = newChat(summary);
      this.chats.set(summary.id, chat);
    } else {
      // Keep what live events moved further than this answer (it may be a moment old).
      const last = Math.max(summary.last_seq, chat.summary.last_seq);
      const read = Math.max(summary.read_seq, chat.summary.read_seq);
      const lastMessage = chat.summary.last_seq > summary.last_seq ? chat.summary.last_message : summary.last_message;
      chat.summary = { ...summary, last_seq: last, read_seq: read, last_message: lastMessage, unread_count: last - read };
    }
    for (const member of summary.members) void this.name(member);
    return chat;
  }

  /** Fetch a conversation's summary; callers asking while one is on its way share it (a burst
   * of messages of a new conversation asks once). */
  private refreshSummary(id: string): Promise<void> {
    let fetching = this.summaryFetches.get(id);
    if (!fetching) {
      fetching = this.fetchSummary(id).finally(() => this.summaryFetches.delete(id));
      this.summaryFetches.set(id, fetching);
    }
    return fetching;
  }

  private async fetchSummary(id: string): Promise<void> {
    try {
      this.upsert(await this.client.conversation(id));
    } catch (error) {
      console.warn("rtm: conversation", id, describe(error));
    }
    this.renderSoon();
  }

  private async create(kind: "direct" | "group"): Promise<void> {
    $("new-error").textContent = "";
    const input = kind === "direct" ? ($("direct-username") as HTMLInputElement) : ($("group-usernames") as HTMLInputElement);
    try {
      const wanted = input.value.split(",").map((name) => name.trim().toLowerCase()).filter(Boolean);
      const members = await Promise.all(wanted.map((name) => this.findUser(name)));
      const title = kind === "group" ? ($("group-title") as HTMLInputElement).value.trim() : undefined;
      const created = await this.client.createConversation({
        kind,
        member_ids: members.map((user) => user.id),
        ...(title ? { title } : {}),
      });
      input.value = "";
      await this.refreshSummary(created.id);
      await this.open(created.id);
    } catch (error) {
      $("new-error").textContent = describe(error);
    }
  }

  private async findUser(username: string): Promise<Person> {
    const found = (await this.client.searchUsers(username)).map(person).find((user) => user.username === username);
    if (!found) throw new Error(`no user named ${username}`);
    this.names.set(found.id, found.username);
    return found;
  }

  /** A user's name, looked up once (auth's `GET /v1/users/{id}`; the SDK has no call for it). */
  private name(id: string): Promise<Person | undefined> {
    let user = this.users.get(id);
    if (!user) {
      user = this.fetchUser(id);
      this.users.set(id, user);
      void user.then((u) => {
        if (u) this.names.set(id, u.username);
        this.renderSoon();
      });
    }
    return user;
  }

  private async fetchUser(id: string): Promise<Person | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await fetch(`/v1/users/${encodeURIComponent(id)}`, {
        headers: { Authorization: `Bearer ${this.client.tokens.accessToken}` },
      });
      if (answer.ok) return person((await answer.json()) as User);
      if (answer.status !== 401) break;
      await this.client.refreshTokens();
    }
    this.users.delete(id); // try again next time it is needed
    return undefined;
  }

  private chatName(chat: Chat): string {
    const others = chat.summary.members.filter((id) => id !== this.me?.id);
    const names = others.map((id) => this.names.get(id) ?? "…");
    if (chat.summary.kind === "direct") return names[0] ?? "(left)";
    return chat.summary.title ?? names.join(", ");
  }

  // -- one conversation -----------------------------------------------------------------------

  private async open(id: string): Promise<void> {
    this.current = id;
    const chat = this.chats.get(id);
    if (!chat) return;
    this.render();
    $("text").focus();
    if (chat.loadedFrom === undefined) {
      const page = await this.client.history(id, { limit: PAGE });
      for (const message of page.messages) addMessage(chat, message, this.me?.id ?? "");
      chat.loadedFrom = page.messages[0]?.seq ?? chat.summary.last_seq + 1;
      chat.hasMore = page.has_more;
      await this.fillGaps(chat);
      this.render("bottom");
    }
    this.markReadIfSeen();
  }

  /** Live messages that came before the history page was loaded may leave a hole above it. */
  private async fillGaps(chat: Chat): Promise<void> {
    for (let gap = firstGap(chat); gap; gap = firstGap(chat)) {
      const page = await this.client.history(chat.summary.id, { afterSeq: gap.after, beforeSeq: gap.before, limit: 200 });
      if (page.messages.length === 0) return;
      for (const message of page.messages) addMessage(chat, message, this.me?.id ?? "");
    }
  }

  private async loadOlder(): Promise<void> {
    const chat = this.current ? this.chats.get(this.current) : undefined;
    if (!chat || !chat.hasMore || this.loadingOlder || chat.loadedFrom === undefined) return;
    this.loadingOlder = true;
    try {
      const page = await this.client.history(chat.summary.id, { beforeSeq: chat.loadedFrom, limit: PAGE });
      for (const message of page.messages) addMessage(chat, message, this.me?.id ?? "");
      chat.loadedFrom = page.messages[0]?.seq ?? chat.loadedFrom;
      chat.hasMore = page.has_more && page.messages.length > 0;
      this.render("keep");
    } catch (error) {
      console.warn("rtm: history", describe(error));
    } finally {
      this.loadingOlder = false;
    }
  }

  private markReadIfSeen(): void {
    const chat = this.current ? this.chats.get(this.current) : undefined;
    if (!chat || document.visibilityState !== "visible" || chat.loadedFrom === undefined) return;
    const newest = newestShown(chat);
    if (newest <= chat.summary.read_seq) return;
    chat.summary.read_seq = newest;
    chat.summary.unread_count = Math.max(0, chat.summary.last_seq - newest);
    void this.client.markRead(chat.summary.id, newest);
    this.renderSoon();
  }

  private send(): void {
    const input = $("text") as HTMLInputElement;
    const body = input.value.trim();
    if (!this.current || body === "") return;
    input.value = "";
    this.lastTyping = 0; // the others' indicator goes with this message: the next key says it again
    const conversationId = this.current;
    const clientMsgId = uuid4();
    const sending = this.client.send(conversationId, body, { clientMsgId });
    // The outbox has it from now on (stored a moment later: `onSaved`).
    const entry = this.client.pending().find((e) => e.client_msg_id === clientMsgId);
    if (entry) this.outgoing.set(clientMsgId, { entry, state: "saving" });
    sending.catch((error: unknown) => {
      this.outgoing.delete(clientMsgId);
      $("new-error").textContent = `not sent: ${describe(error)}`;
      this.renderSoon();
    });
    this.render("bottom");
  }

  // -- rendering ------------------------------------------------------------------------------

  private renderQueued = false;

  private renderSoon(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  private render(scroll: "bottom" | "keep" | "auto" = "auto"): void {
    this.renderList();
    this.renderChat(scroll);
  }

  private renderList(): void {
    const list = $("conversations");
    list.replaceChildren(
      ...byActivity(this.chats.values()).map((chat) => {
        const item = el("li", "conversation");
        item.dataset.id = chat.summary.id;
        item.classList.toggle("active", chat.summary.id === this.current);
        const name = el("span", "name");
        const others = chat.summary.members.filter((id) => id !== this.me?.id);
        const dot = el("span", "dot");
        dot.classList.toggle("online", others.some((id) => this.online.has(id)));
        name.append(dot, this.chatName(chat));
        const preview = el("span", "preview");
        const last = chat.summary.last_message;
        preview.textContent = last ? `${last.sender_id === this.me?.id ? "you: " : ""}${last.body}` : "no messages yet";
        item.append(name, preview);
        const unread = chat.summary.id === this.current ? 0 : chat.summary.unread_count;
        if (unread > 0) item.append(Object.assign(el("span", "badge"), { textContent: String(unread) }));
        item.addEventListener("click", () => void this.open(chat.summary.id));
        return item;
      }),
    );
  }

  private renderChat(scroll: "bottom" | "keep" | "auto"): void {
    const chat = this.current ? this.chats.get(this.current) : undefined;
    $("composer").hidden = !chat;
    if (!chat) return;
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    const atBottom = fromBottom - box.clientHeight < 60;
    $("chat-title").textContent = this.chatName(chat);
    const others = chat.summary.members.filter((id) => id !== this.me?.id);
    const onlineCount = others.filter((id) => this.online.has(id)).length;
    $("chat-presence").textContent =
      chat.summary.kind === "direct" ? (onlineCount ? "online" : "offline") : `${others.length + 1} members, ${onlineCount} online`;

    const rows: HTMLElement[] = [];
    if (chat.loadedFrom === undefined) rows.push(Object.assign(el("div", "older"), { textContent: "Loading…" }));
    else if (chat.hasMore) rows.push(Object.assign(el("div", "older"), { textContent: "Scroll up for older messages" }));
    else rows.push(Object.assign(el("div", "older"), { textContent: "Start of the conversation" }));
    for (const message of shown(chat)) rows.push(this.storedRow(chat, message));
    for (const o of outgoingOf(chat, this.outgoing)) rows.push(this.outgoingRow(o));
    box.replaceChildren(...rows);

    const now = Date.now();
    const typing = [...chat.typing].filter(([, until]) => until > now).map(([id]) => this.names.get(id) ?? "someone");
    $("typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";

    if (scroll === "bottom" || (scroll === "auto" && atBottom)) box.scrollTop = box.scrollHeight;
    else box.scrollTop = box.scrollHeight - fromBottom; // older messages prepended: stay put
    // Nothing to scroll yet (a short page): there would be no scroll to ask for older ones.
    if (chat.hasMore && box.scrollHeight <= box.clientHeight + 80) void this.loadOlder();
  }

  private storedRow(chat: Chat, message: Message): HTMLElement {
    const mine = message.sender_id === this.me?.id;
    const row = el("div", mine ? "msg mine" : "msg");
    row.dataset.seq = String(message.seq);
    row.dataset.clientMsgId = message.client_msg_id;
    if (!mine && chat.summary.kind === "group") {
      row.append(Object.assign(el("span", "who"), { textContent: this.names.get(message.sender_id) ?? "…" }));
    }
    row.append(Object.assign(el("span", "body"), { textContent: message.body }));
    const meta = el("span", "meta");
    meta.textContent = new Date(message.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (mine) {
      const readers = [...chat.readBy].filter(([, seq]) => seq >= message.seq).map(([id]) => this.names.get(id) ?? "…");
      row.dataset.state = readers.length ? "read" : "stored";
      const tick = Object.assign(el("span", "tick"), { textContent: readers.length ? " ✓✓" : " ✓" });
      tick.title = readers.length ? `read by ${readers.join(", ")}` : "delivered to the server";
      meta.append(tick);
    }
    row.append(meta);
    return row;
  }

  private outgoingRow(o: Outgoing): HTMLElement {
    const row = el("div", "msg mine");
    row.dataset.state = o.state;
    row.dataset.clientMsgId = o.entry.client_msg_id;
    row.append(Object.assign(el("span", "body"), { textContent: o.entry.body }));
    const meta = Object.assign(el("span", "meta"), { textContent: o.state === "sent" ? "✓" : "sending…" });
    row.append(meta);
    return row;
  }
}

function el(tag: string, className: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

/** A random UUID; `crypto.randomUUID` exists only in secure contexts (not on http://<LAN address>). */
function uuid4(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function describe(error: unknown): string {
  if (error instanceof RtmError) return error.message || error.code;
  return error instanceof Error ? error.message : String(error);
}

async function main(): Promise<void> {
  const answer = await fetch("config.json");
  if (!answer.ok) throw new Error(`config.json: ${answer.status}`);
  await new ChatPage((await answer.json()) as PageConfig).boot();
}

main().catch((error: unknown) => {
  const banner = $("banner");
  banner.textContent = `The page could not start: ${describe(error)}`;
  banner.className = "failed";
  banner.hidden = false;
});
