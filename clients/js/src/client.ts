import type { BackoffOptions } from "./backoff.js";
import {
  Connection,
  defaultSocketFactory,
  type ConnectionState,
  type SocketFactory,
} from "./connection.js";
import { Emitter } from "./emitter.js";
import { RtmError } from "./errors.js";
import { requestJson, type FetchLike } from "./http.js";
import { ConversationLists } from "./listing.js";
import { Outbox, type OutboxOptions } from "./outbox.js";
import { isReadReply, refusesQuery, resumeFrames, resumePlan, typingFrame, type ResumePlan } from "./protocol.js";
import { ReadMarkers } from "./reads.js";
import { Receiver } from "./receiver.js";
import { Session, type Tokens } from "./session.js";
import { defaultStore, type OutboxEntry, type Store } from "./store.js";
import type {
  Ack,
  Conversation,
  ConversationEvent,
  ConversationSummary,
  CreateConversation,
  ErrorFrame,
  Grant,
  Message,
  MessagePage,
  PresenceEvent,
  ReadEvent,
  ReadMark,
  ResumeFrame,
  ResumedFrame,
  Session as SessionInfo,
  TypingEvent,
  User,
} from "./types.js";

export interface ClientOptions {
  /** Auth's HTTP base, e.g. `http://127.0.0.1:8080`. */
  authUrl: string;
  /** The producer's HTTP base (its WebSocket is `<base>/v1/ws`); several for several instances. */
  producerUrl: string | string[];
  /** The consumer's HTTP base; several for several instances (reconnects rotate through them). */
  consumerUrl: string | string[];
  /** Outbox and cursors: IndexedDB in browsers, memory elsewhere, unless given. */
  store?: Store;
  fetch?: FetchLike;
  /** How to open a WebSocket: the native one, else the `ws` package (Node 20). */
  webSocket?: SocketFactory;
  backoff?: BackoffOptions;
  /** Ping a socket silent for this long (default 15 s)... */
  pingIntervalMs?: number;
  /** ...and replace it when nothing comes back within this (default 10 s). */
  pongTimeoutMs?: number;
  /** Replace a socket not open and authenticated within this (default 10 s). */
  handshakeTimeoutMs?: number;
  outbox?: OutboxOptions;
  /** The longest cursor list (characters of the `cursors` query value) given with the
   * consumer connection; more go in `resume` frames (default 4000, about 90 conversations; 0:
   * always frames). Lower it behind a proxy with a short request-line limit. */
  urlCursorsMaxChars?: number;
}

export interface ConnectionStates {
  producer: ConnectionState;
  consumer: ConnectionState;
}

export interface ClientEvents {
  /** A stored message, each exactly once per conversation and in `seq` order. */
  message: (message: Message) => void;
  typing: (event: TypingEvent) => void;
  read: (event: ReadEvent) => void;
  presence: (event: PresenceEvent) => void;
  conversation: (event: ConversationEvent) => void;
  /** The conversation list the Client asked for at a consumer (re)connection (to follow the
   * conversations created or joined while no socket was open), before their messages come. A
   * connection whose list was the application's own `conversations()` has no such event. */
  listed: (conversations: ConversationSummary[]) => void;
  /** One of the two sockets changed state (`failed`: a close code that forbids reconnecting). */
  state: (states: ConnectionStates, detail: { socket: "producer" | "consumer"; code?: number; reason?: string }) => void;
  /** A send was acked, including sends restored from the store after a reload. */
  ack: (ack: Ack, entry: OutboxEntry) => void;
  resumed: (frame: ResumedFrame) => void;
  /** New tokens after a refresh: store the refresh token, the old one is spent. */
  tokens: (tokens: Tokens) => void;
  /** An error frame not about a send, or the end of the session. */
  error: (error: RtmError) => void;
}

const trim = (url: string): string => url.replace(/\/+$/, "");
const list = (urls: string | string[]): string[] => (Array.isArray(urls) ? urls : [urls]).map(trim);
const wsUrl = (base: string): string => base.replace(/^http/, "ws") + "/v1/ws";

/** The rtm client: sign in, `connect()`, then `send()` and listen for `message`. The Client owns
 * reliability — outbox, reconnects, resume, gap filling and token refresh — so the application
 * needs no retry code of its own. */
export class Client extends Emitter<ClientEvents> {
  private readonly options: ClientOptions;
  private readonly fetchFn: FetchLike;
  private readonly store: Store;
  private readonly producerUrls: string[];
  private readonly consumerUrls: string[];
  private session: Session | undefined;
  private stateUser: string | undefined;
  private producer: Connection | undefined;
  private consumer: Connection | undefined;
  private outbox: Outbox | undefined;
  private receiver: Receiver | undefined;
  private readonly reads: ReadMarkers;
  private readonly lists: ConversationLists<ConversationSummary>;
  private resumeTimer: ReturnType<typeof setTimeout> | undefined;
  /** How the consumer socket being opened (or open) resumes: fixed when its URL is made. */
  private plan: ResumePlan | undefined;
  /** The resumes the consumer socket has still to answer with `resumed`, in order. */
  private resumePending: ResumeFrame[] = [];
  /** The cursors went in the URL and the server has not refused them (see `refusesQuery`). */
  private cursorsInUrl = false;
  private httpIndex = { producer: 0, consumer: 0 };

  constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.store = options.store ?? defaultStore();
    this.producerUrls = list(options.producerUrl);
    this.consumerUrls = list(options.consumerUrl);
    this.reads = new ReadMarkers(
      (frame) => this.writeProducer(frame),
      (id, seq) => this.postRead(id, seq),
      () => this.producer !== undefined,
    );
    this.lists = new ConversationLists(
      () => this.listConversations(),
      () => this.receiver,
      (conversations) => this.emit("listed", conversations),
      (error) => this.emit("error", error),
    );
  }

  // -- signing in ---------------------------------------------------------------------------

  async register(username: string, password: string, displayName?: string): Promise<User> {
    const body: Record<string, string> = { username, password };
    if (displayName !== undefined) body.display_name = displayName;
    return requestJson<User>(this.fetchFn, `${trim(this.options.authUrl)}/v1/auth/register`, {
      method: "POST",
      body,
    });
  }

  async login(username: string, password: string): Promise<Grant> {
    const grant = await requestJson<Grant>(this.fetchFn, `${trim(this.options.authUrl)}/v1/auth/login`, {
      method: "POST",
      body: { username, password },
    });
    this.useTokens(Session.fromGrant(grant));
    return grant;
  }

  /** Sign in with tokens the application kept (e.g. the refresh token of the last `tokens`). */
  useTokens(tokens: Tokens): void {
    this.session?.close();
    this.lists.reset(); // a list asked for before may be another user's
    this.session = new Session(
      tokens,
      trim(this.options.authUrl),
      this.fetchFn,
      (fresh) => {
        this.producer?.reauthenticate(fresh.accessToken);
        this.consumer?.reauthenticate(fresh.accessToken);
        this.emit("tokens", fresh);
      },
      (error) => this.emit("error", error),
    );
    this.emit("tokens", this.session.current);
  }

  /** When the application has only a refresh token (its tokens from the last run). */
  async resumeSession(refreshToken: string): Promise<Grant> {
    const grant = await requestJson<Grant>(this.fetchFn, `${trim(this.options.authUrl)}/v1/auth/refresh`, {
      method: "POST",
      body: { refresh_token: refreshToken },
    });
    this.useTokens(Session.fromGrant(grant));
    return grant;
  }

  /** Refresh the tokens now (they are refreshed before expiry anyway); both sockets
   * re-authenticate in-band, without reconnecting. */
  async refreshTokens(): Promise<Tokens> {
    await this.requireSession().refresh();
    return this.requireSession().current;
  }

  get userId(): string {
    return this.requireSession().userId;
  }

  get tokens(): Tokens {
    return this.requireSession().current;
  }

  private requireSession(): Session {
    if (!this.session) throw new RtmError("unauthorized", "sign in first (login or useTokens)");
    return this.session;
  }

  // -- the sockets --------------------------------------------------------------------------

  /** Load the outbox and cursors of this user from the store, open both sockets, and resolve
   * once both are open (it rejects if one fails for good, e.g. 4504 too many connections). */
  async connect(): Promise<void> {
    const session = this.requireSession();
    if (this.producer) return;
    const userId = session.userId;
    if (this.stateUser !== userId) {
      // Outbox and cursors belong to one user. The same user connecting again (after close(),
      // or after a `failed` socket and a new sign-in) keeps them, and so keeps the promises of
      // the sends still waiting for their ack.
      this.stateUser = userId;
      this.outbox = new Outbox(
        this.store,
        userId,
        (frame) => this.producer?.send(frame) ?? false,
        (ack, entry) => this.emit("ack", ack, entry),
        this.options.outbox,
      );
      this.receiver = new Receiver(
        this.store,
        userId,
        (id, afterSeq, limit) => this.history(id, { afterSeq, limit }),
        (message) => this.emit("message", message),
      );
    }
    this.receiver!.start();
    await Promise.all([this.outbox!.restore(), this.receiver!.restore()]);
    const common = {
      socketFactory: this.options.webSocket ?? defaultSocketFactory,
      token: () => this.requireSession().fresh(),
      refresh: () => this.requireSession().refresh(),
      backoff: this.options.backoff,
      pingIntervalMs: this.options.pingIntervalMs,
      pongTimeoutMs: this.options.pongTimeoutMs,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
    };
    const opened = { producer: false, consumer: false };
    const firstOpen = new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (opened.producer && opened.consumer) resolve();
      };
      const onState = (socket: "producer" | "consumer") =>
        (state: ConnectionState, detail: { code?: number; reason?: string }): void => {
          if (state === "open") opened[socket] = true;
          if (state === "failed") {
            reject(new RtmError("closed", `${socket} socket closed ${detail.code ?? ""} ${detail.reason ?? ""}`.trim()));
          }
          this.emit("state", this.states, { socket, ...detail });
          check();
        };
      this.producer = new Connection({
        ...common,
        name: "producer",
        urls: this.producerUrls.map(wsUrl),
        readyType: "auth_ok",
        onFrame: (frame) => this.onProducerFrame(frame),
        onOpen: () => this.onProducerOpen(),
        onDown: () => {
          this.outbox?.disconnected();
          this.reads.down();
        },
        onState: onState("producer"),
      });
      this.consumer = new Connection({
        ...common,
        name: "consumer",
        urls: this.consumerUrls.map(wsUrl),
        query: () => this.planResume(),
        readyType: "ready",
        onFrame: (frame) => this.onConsumerFrame(frame),
        onOpen: () => this.onConsumerOpen(),
        onDown: () => this.onConsumerDown(),
        onState: onState("consumer"),
      });
    });
    firstOpen.catch(() => undefined);
    this.producer!.start();
    this.consumer!.start();
    await firstOpen;
  }

  get states(): ConnectionStates {
    return {
      producer: this.producer?.currentState ?? "idle",
      consumer: this.consumer?.currentState ?? "idle",
    };
  }

  private onProducerOpen(): void {
    this.reads.opened();
    this.outbox?.connected();
  }

  private writeProducer(frame: object): boolean {
    const written = this.producer?.send(frame) ?? false;
    if (written) this.outbox?.spend();
    return written;
  }

  private onProducerFrame(frame: { type: string; [key: string]: unknown }): void {
    if (frame.type === "ack") this.outbox?.handleAck(frame as unknown as Ack);
    else if (frame.type === "error") {
      const error = frame as unknown as ErrorFrame;
      if (this.outbox?.handleError(error)) return;
      // A refused `read` has no ref: the reads waiting for `read_ok` ask HTTP, which answers each.
      if ((error.ref ?? null) === null && this.reads.onRefused(error.code)) return;
      this.emit("error", frameError(error));
    } else if (isReadReply(frame)) {
      this.reads.onReadOk(frame);
    }
  }

  /** The query of the next consumer socket: the cursors with the connection when they fit, so
   * that the server resumes them at once, and a client with no cursors gets live messages with
   * no hold (`?cursors=`); else `?resume=1` and `resume` frames after `ready`. */
  private planResume(): string {
    this.lists.beforeSocket();
    this.plan = resumePlan(this.receiver!.snapshot(), this.options.urlCursorsMaxChars);
    return this.plan.query;
  }

  private onConsumerOpen(): void {
    let plan = this.plan; // made with the socket's URL
    this.plan = undefined;
    if (!plan) {
      const frames = resumeFrames(this.receiver!.snapshot());
      plan = { query: "", frames, expected: frames };
    }
    this.resumePending = [...plan.expected];
    this.cursorsInUrl = plan.frames.length === 0;
    for (const frame of plan.frames) this.consumer?.send(frame);
    this.lists.opened();
  }

  private sendResume(): void {
    clearTimeout(this.resumeTimer);
    for (const frame of this.resumePending) this.consumer?.send(frame);
  }

  private onConsumerDown(): void {
    this.lists.reset();
    clearTimeout(this.resumeTimer);
    this.resumePending = [];
    this.cursorsInUrl = false;
  }

  private onConsumerFrame(frame: { type: string; [key: string]: unknown }): void {
    const receiver = this.receiver!;
    const { type, ...event } = frame;
    switch (type) {
      case "message":
        receiver.onMessage(event as unknown as Message);
        break;
      case "resumed":
        this.resumePending = this.resumePending.slice(1);
        this.cursorsInUrl = false;
        receiver.onResumed(frame as unknown as ResumedFrame);
        this.emit("resumed", frame as unknown as ResumedFrame);
        break;
      case "conversation":
        receiver.onConversation(event as unknown as ConversationEvent);
        this.emit("conversation", event as unknown as ConversationEvent);
        break;
      case "typing":
        this.emit("typing", event as unknown as TypingEvent);
        break;
      case "read":
        this.emit("read", event as unknown as ReadEvent);
        break;
      case "presence":
        this.emit("presence", event as unknown as PresenceEvent);
        break;
      case "error": {
        const error = frame as unknown as ErrorFrame;
        if (error.code === "unavailable" && this.resumePending.length > 0) {
          // PostgreSQL is down: send the same resume again when told (docs/protocol.md), as a
          // frame also when it was the URL's.
          this.cursorsInUrl = false;
          this.resumeTimer = setTimeout(() => this.sendResume(), error.retry_after_ms ?? 1000);
        } else if (this.cursorsInUrl && refusesQuery(error)) {
          // The server refused the URL's cursors and holds live messages as for `?resume=1`,
          // waiting for a `resume` frame: send the same cursors as one.
          this.cursorsInUrl = false;
          this.sendResume();
        } else {
          this.emit("error", frameError(error));
        }
        break;
      }
      default: // ready, auth_ok, pong, and frames of later protocol versions
    }
  }

  // -- sending ------------------------------------------------------------------------------

  /** Send a message; resolves with the ack once PostgreSQL has stored it (`"wait":"stored"`):
   * the ack carries its `seq`, and history read after it holds the message. The send is kept
   * (and resent with the same `client_msg_id` after reconnects, reloads and `not_stored_yet`)
   * until then, so the application never retries: it only awaits. Rejects only when the server
   * refuses the message for good (`validation_failed`, `forbidden`). */
  send(conversationId: string, body: string, options: { clientMsgId?: string } = {}): Promise<Ack> {
    if (!this.outbox) return Promise.reject(new RtmError("closed", "call connect() first"));
    return this.outbox.add(conversationId, body, options.clientMsgId ?? uuid4());
  }

  /** Sends waiting for their ack. */
  pending(): OutboxEntry[] {
    return this.outbox?.entries() ?? [];
  }

  /** Say the user is typing (ephemeral: dropped when the producer socket is not open). */
  typing(conversationId: string): boolean {
    return this.writeProducer(typingFrame(conversationId));
  }

  /** Move the read marker. Resolves once the server has taken it: the producer's `read_ok` on
   * an open socket, else the consumer's `POST /v1/conversations/{id}/read` (which stores it
   * before answering); a marker HTTP cannot store for now waits for the producer socket.
   * Rejects when it is refused for good (`forbidden`, `validation_failed`). */
  markRead(conversationId: string, seq: number): Promise<void> {
    return this.reads.mark(conversationId, seq);
  }

  private postRead(conversationId: string, seq: number): Promise<ReadMark> {
    return this.call("consumer", `/v1/conversations/${encodeURIComponent(conversationId)}/read`, {
      method: "POST",
      body: { seq },
    });
  }

  // -- HTTP ---------------------------------------------------------------------------------

  /** An authenticated request to a service, refreshing the token once on 401 and trying the
   * next instance on a network error. */
  private async call<T>(service: "producer" | "consumer" | "auth", path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
    const urls = service === "auth" ? [trim(this.options.authUrl)] : service === "producer" ? this.producerUrls : this.consumerUrls;
    let refreshed = false;
    for (let tries = 0; ; tries++) {
      const index = service === "auth" ? 0 : this.httpIndex[service] % urls.length;
      try {
        return await requestJson<T>(this.fetchFn, urls[index] + path, {
          ...init,
          token: this.requireSession().accessToken,
        });
      } catch (error) {
        const e = error as RtmError;
        if (e.status === 401 && !refreshed) {
          refreshed = true;
          await this.requireSession().refresh();
        } else if (e.code === "network" && service !== "auth" && tries + 1 < urls.length) {
          this.httpIndex[service]++;
        } else {
          throw error;
        }
      }
    }
  }

  /** One page of a conversation's history (ascending by `seq`). */
  history(conversationId: string, options: { beforeSeq?: number; afterSeq?: number; limit?: number } = {}): Promise<MessagePage> {
    const query = new URLSearchParams();
    if (options.beforeSeq !== undefined) query.set("before_seq", String(options.beforeSeq));
    if (options.afterSeq !== undefined) query.set("after_seq", String(options.afterSeq));
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const q = query.toString();
    return this.call("consumer", `/v1/conversations/${encodeURIComponent(conversationId)}/messages${q ? "?" + q : ""}`);
  }

  /** Page backwards from the newest message (or from `beforeSeq`): each page ascending. */
  async *olderPages(conversationId: string, options: { beforeSeq?: number; limit?: number } = {}): AsyncGenerator<Message[]> {
    let before = options.beforeSeq;
    for (;;) {
      const page = await this.history(conversationId, {
        ...(before === undefined ? {} : { beforeSeq: before }),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
      });
      if (page.messages.length > 0) yield page.messages;
      if (!page.has_more || page.messages.length === 0) return;
      before = page.messages[0]!.seq;
    }
  }

  /** The user's conversations, newest activity first. Asked while the consumer socket is not
   * open (before `connect()`, say), the answer is also the list the next consumer connection
   * follows, so that connection does not ask again (see `ConversationLists`). */
  async conversations(): Promise<ConversationSummary[]> {
    const ticket = this.lists.ask(this.consumer?.isOpen ?? false);
    const conversations = await this.listConversations();
    this.lists.answered(ticket, conversations);
    return conversations;
  }

  private async listConversations(): Promise<ConversationSummary[]> {
    // One request: the route is not paged (docs/protocol.md §6 and the consumer's OpenAPI
    // document answer every conversation of the user at once).
    const answer = await this.call<{ conversations: ConversationSummary[] }>("consumer", "/v1/conversations");
    return answer.conversations;
  }

  conversation(conversationId: string): Promise<ConversationSummary> {
    return this.call("consumer", `/v1/conversations/${encodeURIComponent(conversationId)}`);
  }

  /** Create a conversation (a direct one again returns the existing one) and follow it: its
   * messages after `last_seq` (all of a new one's) come as `message` events; older ones are
   * history. */
  async createConversation(body: CreateConversation): Promise<Conversation> {
    const conversation = await this.call<Conversation>("producer", "/v1/conversations", { method: "POST", body });
    this.receiver?.follow(conversation.id, conversation.last_seq);
    return conversation;
  }

  addMember(conversationId: string, userId: string): Promise<void> {
    return this.call("producer", `/v1/conversations/${encodeURIComponent(conversationId)}/members`, {
      method: "POST",
      body: { user_id: userId },
    });
  }

  removeMember(conversationId: string, userId: string): Promise<void> {
    return this.call("producer", `/v1/conversations/${encodeURIComponent(conversationId)}/members/${encodeURIComponent(userId)}`, {
      method: "DELETE",
    });
  }

  me(): Promise<User> {
    return this.call("auth", "/v1/auth/me");
  }

  async searchUsers(prefix: string): Promise<User[]> {
    const answer = await this.call<{ users: User[] }>("auth", `/v1/users?q=${encodeURIComponent(prefix)}`);
    return answer.users;
  }

  async sessions(): Promise<SessionInfo[]> {
    const answer = await this.call<{ sessions: SessionInfo[] }>("auth", "/v1/auth/sessions");
    return answer.sessions;
  }

  /** The cursors (last delivered `seq` per conversation) the next `resume` will send. */
  cursors(): Record<string, number> {
    return this.receiver?.snapshot() ?? {};
  }

  /** Messages dropped because they had been delivered already (resends at reconnect seams). */
  get duplicatesDropped(): number {
    return this.receiver?.duplicates ?? 0;
  }

  /** Sends written again with the same `client_msg_id` (after reconnects, transient errors). */
  get resent(): number {
    return this.outbox?.resent ?? 0;
  }

  /** End the session on the server (its sockets close 4503), then close. */
  async logout(): Promise<void> {
    const refreshToken = this.session?.current.refreshToken;
    if (refreshToken) {
      await requestJson(this.fetchFn, `${trim(this.options.authUrl)}/v1/auth/logout`, {
        method: "POST",
        body: { refresh_token: refreshToken },
      });
    }
    this.close();
  }

  /** Close both sockets and stop every timer. Unacked sends stay in the store for next time
   * (a later `connect()` of the same user, or a new Client over the same store, resends them).
   * To recover from a `failed` socket: `close()`, sign in again, `connect()`. */
  close(): void {
    this.lists.reset();
    clearTimeout(this.resumeTimer);
    this.producer?.close();
    this.consumer?.close();
    this.outbox?.stop();
    this.receiver?.stop();
    this.session?.close();
    this.producer = this.consumer = undefined;
  }
}

/** A random UUID: `crypto.randomUUID` where there is one (it needs a secure context in
 * browsers), else the same from `crypto.getRandomValues`. */
export function uuid4(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function frameError(frame: ErrorFrame): RtmError {
  return new RtmError(frame.code, frame.message, undefined, frame.field ?? undefined, frame.retry_after_ms ?? undefined);
}
