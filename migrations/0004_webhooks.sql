-- Webhooks (contract §5): subscriptions, and one delivery row per (webhook, event) that the
-- delivery worker claims, attempts and records.

CREATE TABLE webhooks (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url             TEXT NOT NULL CHECK (url ~ '^https?://'),
    -- the IMAP user whose rights decide, at delivery, which folders' events it may receive
    identity        TEXT NOT NULL CHECK (length(identity) BETWEEN 1 AND 255),
    -- NULL: every type / every folder the identity may read
    events          TEXT[],
    folders         BIGINT[],
    enabled         BOOLEAN NOT NULL DEFAULT true,
    disabled_reason TEXT,
    -- Standard Webhooks secret (`whsec_` + base64 key), needed in clear to sign; never logged
    secret          TEXT NOT NULL,
    -- every event with id <= cursor has been considered (queued or filtered out)
    cursor          BIGINT NOT NULL,
    created_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One event to send to one webhook. Delivered in event order per webhook, one at a time: the
-- worker only ever attempts a webhook's pending delivery with the lowest event id.
CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    -- attempts made so far
    attempt         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- a worker that claimed the delivery holds it until then (a crash lets it expire)
    lease_until     TIMESTAMPTZ,
    response_status INTEGER,
    response_body   TEXT,
    error           TEXT,
    duration_ms     INTEGER,
    at              TIMESTAMPTZ,
    replay          BOOLEAN NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, event_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
