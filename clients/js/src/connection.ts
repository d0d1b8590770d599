import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { closeAction, FLOOD_PAUSE_MS } from "./closecodes.js";

/** The part of the WebSocket API the SDK uses: the browser's, and the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketFactory = (url: string) => WebSocketLike | Promise<WebSocketLike>;

const OPEN = 1;

/** The native WebSocket where there is one (browsers, Node ≥ 22), else the `ws` package. */
export const defaultSocketFactory: SocketFactory = async (url) => {
  const native = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (typeof native === "function") return new native(url);
  const { default: WS } = await import("ws");
  return new WS(url) as unknown as WebSocketLike;
};

export type ConnectionState =
  | "idle"
  | "connecting"
  | "open"
  | "reconnecting"
  | "failed" // a close code after which reconnecting is useless (docs/protocol.md, "8. WebSocket close codes")
  | "closed"; // closed by the application

export interface ConnectionOptions {
  name: "producer" | "consumer";
  /** WebSocket URLs; each reconnect tries the next one (several instances of a service). */
  urls: string[];
  /** A query string appended to the URL of each new socket, asked for just before it is made
   * (the consumer's cursors: `?cursors=...`). */
  query?: (() => string) | undefined;
  socketFactory: SocketFactory;
  /** The access token to authenticate with (the first frame is always `auth`). */
  token: () => Promise<string>;
  /** Get a new access token (after 4505). Rejects when the session has ended. */
  refresh: () => Promise<unknown>;
  /** The frame that makes the connection usable: `auth_ok` (producer) or `ready` (consumer). */
  readyType: string;
  backoff?: BackoffOptions | undefined;
  pingIntervalMs?: number | undefined;
  pongTimeoutMs?: number | undefined;
  /** Give up on a socket that is not usable (open, authenticated) within this (default 10 s):
   * a frozen server accepts nothing, refuses nothing, and TCP would wait minutes. */
  handshakeTimeoutMs?: number | undefined;
  onFrame: (frame: { type: string; [key: string]: unknown }) => void;
  onOpen: () => void;
  onDown: () => void;
  onState: (state: ConnectionState, detail: { code?: number; reason?: string }) => void;
}

/** One WebSocket kept open: authenticates with the first frame, reconnects with full-jitter
 * backoff as the close code allows, refreshes the token when the server says it expired, and
 * replaces a silent socket (no frame for `pongTimeoutMs` after a ping) instead of waiting for
 * TCP to notice. The Client reacts to `onOpen` / `onDown` (resends, resumes). */
export class Connection {
  private socket: WebSocketLike | undefined;
  private state: ConnectionState = "idle";
  private attempt = 0;
  private urlIndex = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private lastFrameAt = 0;
  private ready = false;
  /** 4505s since the socket was last usable: the first one is answered at once (refresh, then
   * connect); one more means a fresh token was refused as expired too (a server clock ahead,
   * auth handing out short tokens), and going on at once would be a tight loop of refreshes and
   * connections, so the next ones wait as any other reconnect does. */
  private expiredSinceReady = 0;

  constructor(private readonly options: ConnectionOptions) {}

  get isOpen(): boolean {
    return this.ready && this.socket?.readyState === OPEN;
  }

  get currentState(): ConnectionState {
    return this.state;
  }

  get url(): string {
    return this.options.urls[this.urlIndex % this.options.urls.length]!;
  }

  start(): void {
    if (this.state !== "idle" && this.state !== "closed" && this.state !== "failed") return;
    this.attempt = 0;
    void this.open();
  }

  /** Write a frame if the connection is usable; false otherwise (the caller keeps it). */
  send(frame: object): boolean {
    if (!this.isOpen) return false;
    this.socket!.send(JSON.stringify(frame));
    return true;
  }

  /** Re-authenticate in place with a refreshed token (no reconnect). */
  reauthenticate(token: string): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify({ type: "auth", token }));
  }

  close(): void {
    this.setState("closed", {});
    clearTimeout(this.retryTimer);
    this.abandon(1000, "client closed", false);
  }

  private setState(state: ConnectionState, detail: { code?: number; reason?: string }): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onState(state, detail);
  }

  private async open(): Promise<void> {
    if (this.state === "closed" || this.state === "failed") return;
    this.setState(this.attempt === 0 && !this.socket ? "connecting" : "reconnecting", {});
    let socket: WebSocketLike;
    let token: string;
    try {
      token = await this.options.token();
    } catch {
      this.setState("failed", { reason: "the session has ended" });
      return;
    }
    try {
      socket = await this.options.socketFactory(this.url + (this.options.query?.() ?? ""));
    } catch {
      this.onClosed(1006, "could not create the socket");
      return;
    }
    if ((this.state as ConnectionState) === "closed") {
      socket.close(1000); // closed by the application while the socket was being made
      return;
    }
    this.socket = socket;
    this.ready = false;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = setTimeout(() => {
      if (this.socket === socket && !this.ready) this.abandon(1006, "no answer in time", true);
    }, this.options.handshakeTimeoutMs ?? 10_000);
    socket.onopen = () => {
      this.lastFrameAt = Date.now();
      socket.send(JSON.stringify({ type: "auth", token }));
      this.startPings();
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.lastFrameAt = Date.now();
      let frame: { type: string; [key: string]: unknown };
      try {
        frame = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
      } catch {
        return; // the server sends JSON only; ignore anything else
      }
      if (!this.ready && frame.type === this.options.readyType) {
        clearTimeout(this.handshakeTimer);
        this.ready = true;
        this.attempt = 0;
        this.expiredSinceReady = 0;
        this.setState("open", {});
        this.options.onFrame(frame);
        this.options.onOpen();
        return;
      }
      this.options.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.onClosed(event.code, event.reason);
    };
    socket.onerror = () => undefined; // a close event follows
  }

  private startPings(): void {
    clearInterval(this.pingTimer);
    const every = this.options.pingIntervalMs ?? 15_000;
    const timeout = this.options.pongTimeoutMs ?? 10_000;
    this.pingTimer = setInterval(() => {
      const silent = Date.now() - this.lastFrameAt;
      if (silent > every + timeout) this.abandon(1006, "no answer to ping", true);
      else if (silent >= every) this.socket?.send(JSON.stringify({ type: "ping" }));
    }, Math.max(50, Math.min(every, timeout) / 2));
    (this.pingTimer as { unref?: () => void }).unref?.();
  }

  /** Drop the current socket without waiting for a close handshake (it may be dead). */
  private abandon(code: number, reason: string, reconnect: boolean): void {
    const socket = this.socket;
    clearInterval(this.pingTimer);
    clearTimeout(this.handshakeTimer);
    if (!socket) return;
    this.socket = undefined;
    const wasReady = this.ready;
    this.ready = false;
    socket.onclose = socket.onmessage = socket.onopen = null;
    try {
      const terminate = (socket as { terminate?: () => void }).terminate;
      if (terminate) terminate.call(socket);
      else socket.close(1000, reason);
    } catch {
      // already closing
    }
    if (wasReady) this.options.onDown();
    if (reconnect) this.onClosed(code, reason, true);
  }

  private onClosed(code: number, reason: string, alreadyDown = false): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.handshakeTimer);
    const wasReady = this.ready;
    this.socket = undefined;
    this.ready = false;
    if (wasReady && !alreadyDown) this.options.onDown();
    if (this.state === "closed") return;
    const action = closeAction(code);
    this.urlIndex++;
    if (action === "stop") {
      this.setState("failed", { code, reason });
      return;
    }
    this.setState("reconnecting", { code, reason });
    if (action === "refresh") {
      const refreshThenConnect = (): void => {
        this.options.refresh().then(
          () => this.schedule(0),
          () => {
            if (this.state !== "closed") this.setState("failed", { code, reason: "the session has ended" });
          },
        );
      };
      if (this.expiredSinceReady++ === 0) refreshThenConnect();
      else {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(refreshThenConnect, backoffDelay(this.attempt++, this.options.backoff));
      }
      return;
    }
    const delay = backoffDelay(this.attempt++, this.options.backoff);
    this.schedule(action === "pause" ? FLOOD_PAUSE_MS + delay : delay);
  }

  private schedule(delay: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }
}
