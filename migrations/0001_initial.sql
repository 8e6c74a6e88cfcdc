-- Flagpost's first schema: the mirror of watched IMAP folders, their messages and ACLs, and the
-- append-only change feed.
--
-- Conventions: ids are opaque bigints (clients never parse them); IMAP numbers that are unsigned
-- 32-bit (UID, UIDVALIDITY, UIDNEXT) or 63-bit (MODSEQ, RFC 7162 §7) fit in BIGINT; every time is
-- TIMESTAMPTZ.

-- One watched mailbox. A folder that disappears from LIST is kept with `removed_at` set, so the
-- events that name it stay meaningful; if it comes back it is the same row again.
CREATE TABLE folders (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the name exactly as the server sends it (modified UTF-7), used in every command
    imap_name       TEXT NOT NULL UNIQUE,
    -- the readable UTF-8 name
    name            TEXT NOT NULL,
    delimiter       TEXT,
    -- checkpoint (RFC 7162): what the mirror covers. Written in the same transaction as the
    -- changes it covers, so a crash replays and never skips.
    uidvalidity     BIGINT CHECK (uidvalidity BETWEEN 1 AND 4294967295),
    highest_modseq  BIGINT CHECK (highest_modseq >= 0),
    uidnext         BIGINT CHECK (uidnext BETWEEN 0 AND 4294967296),
    -- sync state shown to users
    sync_state      TEXT NOT NULL DEFAULT 'connecting'
                    CHECK (sync_state IN ('live', 'polling', 'connecting', 'error')),
    sync_error      TEXT,
    last_synced_at  TIMESTAMPTZ,
    -- ACL mirror: `acl_known` is false when the service account lacks `a` (then only
    -- `service_rights`, its MYRIGHTS, is known)
    acl_known       BOOLEAN NOT NULL DEFAULT false,
    service_rights  TEXT,
    acl_synced_at   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at      TIMESTAMPTZ
);

-- One message of one folder generation. A UIDVALIDITY change makes a new generation: the old
-- rows are removed and the new ones fetched afresh.
CREATE TABLE messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    folder_id       BIGINT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uidvalidity     BIGINT NOT NULL CHECK (uidvalidity BETWEEN 1 AND 4294967295),
    uid             BIGINT NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
    modseq          BIGINT,
    -- the flags as the server reports them, sorted, without \Recent
    flags           TEXT[] NOT NULL DEFAULT '{}',
    answered        BOOLEAN GENERATED ALWAYS AS ('\Answered' = ANY (flags)) STORED,
    flagged         BOOLEAN GENERATED ALWAYS AS ('\Flagged' = ANY (flags)) STORED,
    seen            BOOLEAN GENERATED ALWAYS AS ('\Seen' = ANY (flags)) STORED,
    deleted         BOOLEAN GENERATED ALWAYS AS ('\Deleted' = ANY (flags)) STORED,
    status          TEXT GENERATED ALWAYS AS (
                        CASE WHEN '\Deleted' = ANY (flags) THEN 'deleted'
                             WHEN '\Answered' = ANY (flags) THEN 'answered'
                             ELSE 'pending' END) STORED,
    -- envelope (RFC 3501 §7.4.2), decoded (RFC 2047) and made safe for display
    message_id      TEXT,
    subject         TEXT,
    from_name       TEXT,
    from_address    TEXT,
    to_addresses    JSONB NOT NULL DEFAULT '[]',
    date            TIMESTAMPTZ,
    -- INTERNALDATE
    received_at     TIMESTAMPTZ NOT NULL,
    size            BIGINT NOT NULL DEFAULT 0,
    first_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    answered_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (folder_id, uidvalidity, uid)
);

-- The dashboard's and the API's main query: one folder's messages of a status, by waiting time,
-- with a keyset on (received_at, id).
CREATE INDEX messages_listing ON messages (folder_id, status, received_at, id);
CREATE INDEX messages_received ON messages (received_at, id);

-- The mirrored ACL of a folder (RFC 4314 GETACL), one row per identifier. A negative entry is
-- stored with its leading '-'.
CREATE TABLE acl_entries (
    folder_id       BIGINT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    identifier      TEXT NOT NULL,
    rights          TEXT NOT NULL,
    PRIMARY KEY (folder_id, identifier)
);

-- The append-only change feed. Readers resume with `id > after`.
--
-- Ids come from a sequence, and a sequence hands out ids before commit: two transactions can
-- commit in the opposite order of their ids, and a reader that has seen id 11 would then never see
-- id 10. Writers therefore append events while holding a transaction-level advisory lock that is
-- released only at commit, so ids become visible in strictly increasing order.
CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type            TEXT NOT NULL CHECK (type IN (
                        'message.added', 'message.updated', 'message.removed',
                        'folder.added', 'folder.removed', 'folder.reset',
                        'folder.acl_changed', 'folder.sync_changed')),
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- no foreign keys: folders are never deleted (only marked removed), a message's events
    -- outlive the message, and a per-row check would double the cost of a first sync
    folder_id       BIGINT NOT NULL,
    message_id      BIGINT,
    data            JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX events_folder ON events (folder_id, id);
CREATE INDEX events_message ON events (message_id, id) WHERE message_id IS NOT NULL;

-- Service-wide settings Flagpost generates and keeps, e.g. the JWT key when none is configured.
CREATE TABLE settings (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
