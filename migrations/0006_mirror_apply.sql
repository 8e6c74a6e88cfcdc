-- One server-side call applies a sync step: new messages with their `message.added` events,
-- flag changes with `message.updated`, expunges with `message.removed`, the NOTIFY and the folder
-- checkpoint, all in the caller's transaction (or the statement's own, called alone). A resync
-- after a reconnect thus costs one round trip to PostgreSQL instead of about eight, and a chunk of
-- a first sync one statement.
--
-- The `message.added` JSON is built by the caller (Flagpost, in Rust, while the next chunk is
-- being fetched) except for what only the database knows: the message id, the etag where the
-- server has no MODSEQ, and the time of the transaction. Building it here with
-- flagpost_message_json() cost about as much as inserting the row itself. The pieces come with
-- their keys in jsonb's own order (shorter keys first), which makes parsing them cheaper. The
-- store's tests check that both give the same JSON.
--
-- Event ids stay in commit order: the event writers' advisory lock (`p_lock`, see
-- crates/store/src/events.rs) is taken first, before any id is allocated or row locked.

-- Flag changes made through the API, from just before the IMAP STORE until the API has recorded
-- its result. The mirror's watcher can see the new flags on the server first (it was already
-- syncing when the STORE landed); it then writes the `message.updated` event itself, and this
-- table lets it name the agent as the event's actor (contract §5) instead of null. A row that
-- outlives its request (the process died in between) stops counting after two minutes.
CREATE TABLE api_flag_writes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    adds        TEXT[] NOT NULL,
    removes     TEXT[] NOT NULL,
    actor       TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_flag_writes_message ON api_flag_writes (message_id);

-- The agent whose API write explains a change of message `m` from `before` to `after`: the
-- latest pending write whose flags `after` has (and `before` did not all have).
CREATE FUNCTION flagpost_flag_write_actor(m BIGINT, before TEXT[], after TEXT[]) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT w.actor FROM api_flag_writes w
    WHERE w.message_id = m AND w.at > now() - interval '2 minutes'
      AND after @> w.adds AND NOT (after && w.removes)
      AND (NOT (before @> w.adds) OR before && w.removes)
    ORDER BY w.id DESC LIMIT 1
$$;

CREATE FUNCTION flagpost_apply_changes(
    p_lock BIGINT, p_channel TEXT, p_folder BIGINT, p_uidvalidity BIGINT,
    -- new messages, in UID order; `n_flags` are array literals, `n_tos` JSON texts,
    -- `n_etags` JSON strings (NULL: derive from the flags); `n_json1` .. `n_json3` the members
    -- of the message JSON between "id", "etag", "updated_at" and "first_seen_at"
    n_uids BIGINT[], n_modseqs BIGINT[], n_flags TEXT[], n_mids TEXT[], n_subjects TEXT[],
    n_fnames TEXT[], n_faddrs TEXT[], n_tos TEXT[], n_dates TIMESTAMPTZ[],
    n_received TIMESTAMPTZ[], n_sizes BIGINT[], n_etags TEXT[], n_json1 TEXT[],
    n_json2 TEXT[], n_json3 TEXT[],
    -- flag changes of messages the mirror has (unknown UIDs are reported back)
    u_uids BIGINT[], u_flags TEXT[], u_modseqs BIGINT[],
    -- expunged UIDs
    r_uids BIGINT[],
    -- the checkpoint covering these changes, written unless unknown UIDs remain
    cp BOOLEAN, cp_uidvalidity BIGINT, cp_modseq BIGINT, cp_uidnext BIGINT,
    OUT added INTEGER, OUT updated INTEGER, OUT removed INTEGER, OUT unknown BIGINT[]
) LANGUAGE plpgsql AS $$
DECLARE
    last_event BIGINT;
    n BIGINT;
    known BIGINT[] := '{}';
    k_uids BIGINT[];
    k_flags TEXT[];
    k_modseqs BIGINT[];
    ids BIGINT[];
    now_json TEXT;
BEGIN
    -- The mirror can be rebuilt from the server and the checkpoint commits with the changes, so
    -- losing the last commits in a PostgreSQL crash only repeats a sync: no WAL flush wait.
    PERFORM pg_advisory_xact_lock(p_lock), set_config('synchronous_commit', 'off', true);
    added := 0;
    updated := 0;
    removed := 0;
    unknown := '{}';

    IF cardinality(n_uids) > 0 THEN
        -- New messages the mirror has already (a race) are not inserted again: their fetched
        -- flags are news instead. One probe of the UID range settles the usual case.
        IF EXISTS (SELECT 1 FROM messages m
                   WHERE m.folder_id = p_folder AND m.uidvalidity = p_uidvalidity
                     AND m.uid BETWEEN n_uids[1] AND n_uids[cardinality(n_uids)]) THEN
            SELECT COALESCE(array_agg(m.uid), '{}') INTO known FROM messages m
            WHERE m.folder_id = p_folder AND m.uidvalidity = p_uidvalidity
              AND m.uid = ANY (n_uids);
        END IF;
        IF cardinality(known) > 0 THEN
            SELECT COALESCE(array_agg(x), '{}'), COALESCE(array_agg(f), '{}'),
                   COALESCE(array_agg(ms), '{}')
            INTO k_uids, k_flags, k_modseqs
            FROM unnest(n_uids, n_flags, n_modseqs) AS y(x, f, ms) WHERE x = ANY (known);
            u_uids := u_uids || k_uids;
            u_flags := u_flags || k_flags;
            u_modseqs := u_modseqs || k_modseqs;
        END IF;
        -- Ids are drawn first, in UID order (the arrays' order), so that the events are
        -- written from the same arrays without reading the rows back. (A known UID wastes one.)
        ids := ARRAY(SELECT nextval('messages_id_seq') FROM unnest(n_uids));
        INSERT INTO messages (id, folder_id, uidvalidity, uid, modseq, flags, message_id,
                              subject, from_name, from_address, to_addresses, date,
                              received_at, size, first_seen_at, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT u.id, p_folder, p_uidvalidity, u.uid, u.modseq, u.flags::text[], u.mid,
               u.subject, u.fname, u.faddr, u.tos::jsonb, u.date, u.received, u.size,
               now(), now()
        FROM unnest(ids, n_uids, n_modseqs, n_flags, n_mids, n_subjects, n_fnames, n_faddrs,
                    n_tos, n_dates, n_received, n_sizes)
             AS u(id, uid, modseq, flags, mid, subject, fname, faddr, tos, date, received, size)
        WHERE cardinality(known) = 0 OR u.uid <> ALL (known);
        now_json := to_json(flagpost_time(now()))::text;
        INSERT INTO events (type, folder_id, message_id, data)
        SELECT 'message.added', p_folder, u.id,
               ('{"message":{"id":"' || u.id || '",' || u.json1 || ',"etag":'
                || COALESCE(u.etag, to_json(flagpost_message_etag(NULL, u.flags::text[]))::text)
                || ',' || u.json2 || ',"updated_at":' || now_json || ',' || u.json3
                || ',"first_seen_at":' || now_json || '}}')::jsonb
        FROM unnest(ids, n_uids, n_flags, n_etags, n_json1, n_json2, n_json3)
             AS u(id, uid, flags, etag, json1, json2, json3)
        WHERE cardinality(known) = 0 OR u.uid <> ALL (known);
        GET DIAGNOSTICS added = ROW_COUNT;
        IF added > 0 THEN
            last_event := currval('events_id_seq');
        END IF;
    END IF;

    IF cardinality(u_uids) > 0 THEN
        SELECT COALESCE(array_agg(x ORDER BY x), '{}') INTO unknown
        FROM unnest(u_uids) x
        WHERE NOT EXISTS (SELECT 1 FROM messages m
                          WHERE m.folder_id = p_folder AND m.uidvalidity = p_uidvalidity
                            AND m.uid = x);
        -- Only rows whose flags really change get a new updated_at and an event; a MODSEQ-only
        -- change (e.g. a keyword set and cleared) just moves the modseq. `o` is the row before.
        WITH u AS (
            SELECT * FROM unnest(u_uids, u_flags, u_modseqs) AS u(uid, flags, modseq)
        ),
        upd AS (
            UPDATE messages m SET
                flags = u.flags::text[],
                modseq = COALESCE(u.modseq, m.modseq),
                updated_at = CASE WHEN m.flags IS DISTINCT FROM u.flags::text[] THEN now()
                                  ELSE m.updated_at END,
                answered_at = CASE
                    WHEN '\Answered' = ANY (u.flags::text[]) AND NOT m.answered THEN now()
                    WHEN NOT ('\Answered' = ANY (u.flags::text[])) THEN NULL
                    ELSE m.answered_at END
            FROM u, messages o
            WHERE o.folder_id = p_folder AND o.uidvalidity = p_uidvalidity AND o.uid = u.uid
              AND m.id = o.id
              AND (o.flags IS DISTINCT FROM u.flags::text[] OR u.modseq IS NOT NULL)
            RETURNING m.id, o.flags AS before, m.flags AS after, m.status, m.flagged, m.seen
        ),
        ev AS (
            INSERT INTO events (type, folder_id, message_id, data)
            SELECT 'message.updated', p_folder, upd.id,
                   jsonb_build_object(
                       'before', jsonb_build_object('flags', to_jsonb(upd.before)),
                       'after', jsonb_build_object('flags', to_jsonb(upd.after),
                                                   'status', upd.status,
                                                   'flagged', upd.flagged, 'seen', upd.seen),
                       'actor', flagpost_flag_write_actor(upd.id, upd.before, upd.after))
            FROM upd WHERE upd.before IS DISTINCT FROM upd.after
            ORDER BY upd.id
            RETURNING id
        )
        SELECT count(*), max(id) INTO updated, n FROM ev;
        last_event := GREATEST(last_event, n);
    END IF;

    IF cardinality(r_uids) > 0 THEN
        WITH d AS (
            DELETE FROM messages
            WHERE folder_id = p_folder AND uidvalidity = p_uidvalidity AND uid = ANY (r_uids)
            RETURNING id, uid
        ),
        ev AS (
            INSERT INTO events (type, folder_id, message_id, data)
            SELECT 'message.removed', p_folder, d.id, jsonb_build_object('uid', d.uid)
            FROM d ORDER BY d.uid, d.id
            RETURNING id
        )
        SELECT count(*), max(id) INTO removed, n FROM ev;
        last_event := GREATEST(last_event, n);
    END IF;

    IF last_event IS NOT NULL THEN
        PERFORM pg_notify(p_channel, last_event::text);
    END IF;
    IF cp AND cardinality(unknown) = 0 THEN
        UPDATE folders SET uidvalidity = cp_uidvalidity, highest_modseq = cp_modseq,
                           uidnext = cp_uidnext, last_synced_at = now()
        WHERE id = p_folder;
    END IF;
END $$;

-- messages.folder_id → folders, checked once per statement instead of once per row. The foreign
-- key's per-row check (a query per inserted message) cost about 15 % of a first sync's database
-- time. These triggers keep what it guaranteed: an inserted or re-pointed message names an
-- existing folder, which is locked FOR KEY SHARE as the foreign key would (a concurrent DELETE of
-- the folder waits for the inserting transaction, one committed before is seen), deleting a
-- folder deletes its messages, and a referenced folder id cannot change.
ALTER TABLE messages DROP CONSTRAINT messages_folder_id_fkey;

CREATE FUNCTION flagpost_check_message_folders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing BIGINT;
BEGIN
    PERFORM 1 FROM folders WHERE id IN (SELECT folder_id FROM new_rows) FOR KEY SHARE;
    SELECT n.folder_id INTO missing
    FROM (SELECT DISTINCT folder_id FROM new_rows) n
    WHERE NOT EXISTS (SELECT 1 FROM folders f WHERE f.id = n.folder_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "messages" violates foreign key constraint "messages_folder_id_fkey"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (folder_id)=(%s) is not present in table "folders".', missing);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION flagpost_check_message_folder() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM folders WHERE id = NEW.folder_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "messages" violates foreign key constraint "messages_folder_id_fkey"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (folder_id)=(%s) is not present in table "folders".', NEW.folder_id);
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION flagpost_delete_folder_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages m USING old_folders o WHERE m.folder_id = o.id;
    RETURN NULL;
END $$;

CREATE FUNCTION flagpost_keep_folder_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       AND EXISTS (SELECT 1 FROM messages WHERE folder_id = OLD.id) THEN
        RAISE EXCEPTION 'update on table "folders" violates foreign key constraint "messages_folder_id_fkey" on table "messages"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "messages".', OLD.id);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER messages_folder_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flagpost_check_message_folders();
-- (A row trigger: transition tables cannot have a column list, and only an UPDATE that sets
-- folder_id fires this one.)
CREATE TRIGGER messages_folder_update BEFORE UPDATE OF folder_id ON messages
    FOR EACH ROW EXECUTE FUNCTION flagpost_check_message_folder();
CREATE TRIGGER folders_delete_messages AFTER DELETE ON folders
    REFERENCING OLD TABLE AS old_folders
    FOR EACH STATEMENT EXECUTE FUNCTION flagpost_delete_folder_messages();
CREATE TRIGGER folders_keep_id BEFORE UPDATE OF id ON folders
    FOR EACH ROW EXECUTE FUNCTION flagpost_keep_folder_id();
