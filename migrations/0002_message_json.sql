-- The contract's message JSON (§5 "Message"), built in one place: change feed events are written
-- with it inside the transaction that inserts the message, and the API reads messages through it,
-- so the two can never drift apart.

-- An entity tag that changes whenever the flags change: the MODSEQ where the server has
-- CONDSTORE (then If-Match maps to UNCHANGEDSINCE), else a digest of the sorted flags.
CREATE FUNCTION flagpost_message_etag(modseq BIGINT, flags TEXT[]) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '"' || CASE WHEN modseq IS NOT NULL THEN 'm' || modseq::text
                       ELSE 'f' || left(md5(array_to_string(flags, ' ')), 16) END || '"'
$$;

-- RFC 3339 in UTC, independent of the session's TimeZone.
CREATE FUNCTION flagpost_time(t TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION flagpost_message_json(m messages) RETURNS JSONB
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'id', m.id::text,
        'folder_id', m.folder_id::text,
        'uid', m.uid,
        'message_id', m.message_id,
        'subject', m.subject,
        'from', jsonb_build_object('name', m.from_name, 'address', m.from_address),
        'to', m.to_addresses,
        'date', flagpost_time(m.date),
        'received_at', flagpost_time(m.received_at),
        'size', m.size,
        'flags', to_jsonb(m.flags),
        'status', m.status,
        'flagged', m.flagged,
        'seen', m.seen,
        'etag', flagpost_message_etag(m.modseq, m.flags),
        'first_seen_at', flagpost_time(m.first_seen_at),
        'answered_at', flagpost_time(m.answered_at),
        'updated_at', flagpost_time(m.updated_at))
$$;
