import { backoffDelay } from "./backoff.js";
import { RtmError } from "./errors.js";
import { requestJson, type FetchLike } from "./http.js";
import type { Grant } from "./types.js";

/** What the application stores to sign the user in again later (rotate it on every `tokens`
 * event: a refresh token works once, and presenting a used one revokes the session). */
export interface Tokens {
  accessToken: string;
  refreshToken?: string | undefined;
  /** Access-token expiry, epoch ms (read from the token's `exp` when not given). */
  expiresAt?: number | undefined;
}

/** The `sub` and `exp` claims of a JWT, read without verifying (the servers verify). */
export function tokenClaims(token: string): { sub?: string; exp?: number } {
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json =
      typeof atob === "function"
        ? decodeURIComponent(
            Array.from(atob(base64), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
          )
        : "";
    return JSON.parse(json) as { sub?: string; exp?: number };
  } catch {
    return {};
  }
}

/** The signed-in user's tokens: refreshes them before the access token expires, one refresh at a
 * time (concurrent refreshes of one token revoke the session, docs/protocol.md), and tells the
 * Client (which re-authenticates both sockets in-band) and the application (which stores the
 * rotated refresh token). */
export class Session {
  private tokens: Tokens;
  private refreshing: Promise<string> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  readonly userId: string;

  constructor(
    tokens: Tokens,
    private readonly authUrl: string,
    private readonly fetchFn: FetchLike,
    private readonly onTokens: (tokens: Tokens) => void,
    private readonly onEnded: (error: RtmError) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = Session.complete(tokens, now);
    const sub = tokenClaims(tokens.accessToken).sub;
    if (!sub) throw new RtmError("unauthorized", "the access token has no `sub` claim");
    this.userId = sub;
    this.schedule();
  }

  static fromGrant(grant: Grant, now: () => number = Date.now): Tokens {
    return {
      accessToken: grant.access_token,
      refreshToken: grant.refresh_token,
      expiresAt: now() + grant.expires_in * 1000,
    };
  }

  private static complete(tokens: Tokens, now: () => number): Tokens {
    if (tokens.expiresAt !== undefined) return { ...tokens };
    const exp = tokenClaims(tokens.accessToken).exp;
    return { ...tokens, expiresAt: exp === undefined ? now() + 15 * 60_000 : exp * 1000 };
  }

  get accessToken(): string {
    return this.tokens.accessToken;
  }

  get current(): Tokens {
    return { ...this.tokens };
  }

  /** Refresh at 80% of the remaining lifetime, at most a minute before expiry. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.closed || !this.tokens.refreshToken) return;
    const left = (this.tokens.expiresAt ?? this.now()) - this.now();
    const delay = Math.max(0, left - Math.min(60_000, left * 0.2));
    this.timer = setTimeout(() => {
      this.refresh().catch(() => undefined); // refresh() reports its own failures
    }, delay);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** An access token that is not about to expire: the current one, or a refreshed one when it
   * has less than `marginMs` left (a laptop back from sleep), so a socket does not open only to
   * be closed 4505. */
  async fresh(marginMs = 5_000): Promise<string> {
    const left = (this.tokens.expiresAt ?? Infinity) - this.now();
    if (left < marginMs && this.tokens.refreshToken) return this.refresh();
    return this.tokens.accessToken;
  }

  /** A new access token. Calls made while one refresh runs share it. */
  refresh(): Promise<string> {
    if (this.closed) return Promise.reject(new RtmError("closed", "the client is closed"));
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<string> {
    const refreshToken = this.tokens.refreshToken;
    if (!refreshToken) {
      const error = new RtmError("session_ended", "the access token expired and there is no refresh token");
      this.onEnded(error);
      throw error;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const grant = await requestJson<Grant>(this.fetchFn, `${this.authUrl}/v1/auth/refresh`, {
          method: "POST",
          body: { refresh_token: refreshToken },
        });
        this.tokens = Session.fromGrant(grant, this.now);
        this.schedule();
        this.onTokens(this.current);
        return grant.access_token;
      } catch (error) {
        const e = error as RtmError;
        const fatal = e.status !== undefined && e.status < 500 && e.status !== 429;
        if (fatal || this.closed) {
          const ended = new RtmError("session_ended", `refresh refused: ${e.message}`, e.status);
          if (!this.closed) this.onEnded(ended);
          throw ended;
        }
        // Network or 503: retry with the same token (docs/protocol.md: a lost answer may have
        // rotated it, and then the retry ends the session; there is nothing better to do).
        await new Promise((r) => setTimeout(r, e.retryAfterMs ?? backoffDelay(attempt, { baseMs: 500, capMs: 10_000 })));
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
