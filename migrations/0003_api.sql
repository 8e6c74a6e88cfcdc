-- The REST API's own state: staff sessions (so a logout revokes a token at once), integration
-- tokens (only a hash is kept), and indexes for the cross-folder listings the API serves.

-- One staff login. The JWT carries `jti` = id; `DELETE /session` sets `revoked_at`, and every
-- request checks it, so a logged-out token stops working at once even before it expires.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- An integration token acts as the IMAP user `identity`, limited to `scopes`. The secret is
-- shown once; only its SHA-256 is stored (it is 256 random bits, so a plain digest is enough).
CREATE TABLE api_tokens (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    identity        TEXT NOT NULL CHECK (length(identity) BETWEEN 1 AND 255),
    scopes          TEXT[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'acl']),
    secret_sha256   BYTEA NOT NULL UNIQUE,
    created_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at    TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ
);

-- Cross-folder listings by waiting time (`GET /messages?status=pending` over every readable
-- folder): walk the index in received order and stop after `limit` rows.
CREATE INDEX messages_status_received ON messages (status, received_at, id);
-- The default listing (`status=any`: pending and answered).
CREATE INDEX messages_live_received ON messages (received_at, id) WHERE NOT deleted;
CREATE INDEX messages_folder_live_received ON messages (folder_id, received_at, id) WHERE NOT deleted;

-- Revocations are announced so open event streams of that principal end at once, also when
-- the revocation comes from another process (`flagpost token revoke`).
-- Channel: flagpost_revocations, payload 'session:<id>' or 'token:<id>'.
