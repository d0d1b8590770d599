-- The auth service's schema: users, sessions, refresh tokens, signing keys, login throttling.
-- Owned by rtm.auth alone (ARCHITECTURE.md §2); other services never read it.

CREATE SCHEMA IF NOT EXISTS auth;

-- username is the normalised name (NFKC + casefold, 3-32 of a-z 0-9 _ . -), unique for ever:
-- a deleted account keeps its name so that nobody can take it over. COLLATE "C" lets the
-- unique index serve prefix searches (LIKE 'abc%').
CREATE TABLE auth.users (
    id            uuid PRIMARY KEY,
    username      text COLLATE "C" NOT NULL CHECK (username ~ '^[a-z0-9_.-]{3,32}$'),
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    deleted_at    timestamptz,
    CONSTRAINT users_username_key UNIQUE (username)
);

-- A session is one login; its refresh tokens form one rotation family. revoked_at ends it;
-- revocation_published records that the SessionRevoked event reached NATS (the relay retries
-- the others), so producers and consumers learn every revocation even across NATS outages.
CREATE TABLE auth.sessions (
    id                   uuid PRIMARY KEY,
    user_id              uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at           timestamptz NOT NULL,
    last_used_at         timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    revoked_at           timestamptz,
    revoke_reason        text CHECK (revoke_reason IN ('logout', 'revoked', 'refresh_reuse')),
    revocation_published boolean NOT NULL DEFAULT false,
    user_agent           text,
    ip                   text
);
CREATE INDEX sessions_live_by_user ON auth.sessions (user_id, created_at DESC)
    WHERE revoked_at IS NULL;
CREATE INDEX sessions_unpublished_revocations ON auth.sessions (revoked_at)
    WHERE revoked_at IS NOT NULL AND NOT revocation_published;

-- Only SHA-256 hashes of refresh tokens are stored. A spent token keeps its row (rotated_at,
-- replaced_by) until it expires, so presenting it again is recognised as reuse.
CREATE TABLE auth.refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    replaced_by bytea
);
CREATE INDEX refresh_tokens_by_session ON auth.refresh_tokens (session_id);
CREATE INDEX refresh_tokens_by_expiry ON auth.refresh_tokens (expires_at);

-- Ed25519 signing keys. private_key is AES-256-GCM encrypted (nonce || ciphertext) with a key
-- derived from RTM_AUTH_KEY_SECRET; kid is the RFC 7638 thumbprint of the public key.
-- A key is published from created_at, signs from activates_at, and is dropped from the JWKS
-- after retire_after (NULL: not scheduled).
CREATE TABLE auth.signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL DEFAULT 'EdDSA' CHECK (algorithm = 'EdDSA'),
    private_key  bytea NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    activates_at timestamptz NOT NULL,
    retire_after timestamptz
);

-- Failed logins per throttling key ('user:<name>' or 'addr:<ip or /64>').
CREATE TABLE auth.login_throttle (
    key             text PRIMARY KEY,
    failures        integer NOT NULL CHECK (failures > 0),
    last_failure_at timestamptz NOT NULL
);
CREATE INDEX login_throttle_by_age ON auth.login_throttle (last_failure_at);
