-- Message counts per folder, kept by statement-level triggers, so `GET /folders` reads five
-- numbers instead of counting every message of every folder on each request (a mirror of a
-- million messages would otherwise cost a full scan per dashboard refresh).
--
-- Each trigger aggregates the statement's transition table once: a batch of 2,500 inserted
-- messages costs one grouped insert here, not 2,500.

CREATE TABLE folder_counts (
    folder_id   BIGINT PRIMARY KEY REFERENCES folders (id) ON DELETE CASCADE,
    pending     BIGINT NOT NULL DEFAULT 0,
    answered    BIGINT NOT NULL DEFAULT 0,
    flagged     BIGINT NOT NULL DEFAULT 0,   -- flagged and not deleted
    deleted     BIGINT NOT NULL DEFAULT 0
);

CREATE FUNCTION flagpost_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO folder_counts AS c (folder_id, pending, answered, flagged, deleted)
    SELECT folder_id,
           count(*) FILTER (WHERE status = 'pending'),
           count(*) FILTER (WHERE status = 'answered'),
           count(*) FILTER (WHERE flagged AND NOT deleted),
           count(*) FILTER (WHERE deleted)
    FROM new_rows GROUP BY folder_id
    ON CONFLICT (folder_id) DO UPDATE SET
        pending = c.pending + EXCLUDED.pending,
        answered = c.answered + EXCLUDED.answered,
        flagged = c.flagged + EXCLUDED.flagged,
        deleted = c.deleted + EXCLUDED.deleted;
    RETURN NULL;
END $$;

CREATE FUNCTION flagpost_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE folder_counts c SET
        pending = c.pending - d.pending,
        answered = c.answered - d.answered,
        flagged = c.flagged - d.flagged,
        deleted = c.deleted - d.deleted
    FROM (SELECT folder_id,
                 count(*) FILTER (WHERE status = 'pending') AS pending,
                 count(*) FILTER (WHERE status = 'answered') AS answered,
                 count(*) FILTER (WHERE flagged AND NOT deleted) AS flagged,
                 count(*) FILTER (WHERE deleted) AS deleted
          FROM old_rows GROUP BY folder_id) d
    WHERE c.folder_id = d.folder_id;
    RETURN NULL;
END $$;

CREATE FUNCTION flagpost_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE folder_counts c SET
        pending = c.pending + d.pending,
        answered = c.answered + d.answered,
        flagged = c.flagged + d.flagged,
        deleted = c.deleted + d.deleted
    FROM (SELECT folder_id, sum(pending) AS pending, sum(answered) AS answered,
                 sum(flagged) AS flagged, sum(deleted) AS deleted
          FROM (SELECT folder_id,
                       (status = 'pending')::int AS pending, (status = 'answered')::int AS answered,
                       (flagged AND NOT deleted)::int AS flagged, deleted::int AS deleted
                FROM new_rows
                UNION ALL
                SELECT folder_id,
                       -(status = 'pending')::int, -(status = 'answered')::int,
                       -(flagged AND NOT deleted)::int, -(deleted::int)
                FROM old_rows) x
          GROUP BY folder_id) d
    WHERE c.folder_id = d.folder_id
      AND (d.pending, d.answered, d.flagged, d.deleted) <> (0, 0, 0, 0);
    RETURN NULL;
END $$;

CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flagpost_counts_insert();
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flagpost_counts_delete();
CREATE TRIGGER messages_count_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flagpost_counts_update();

-- What is already mirrored.
INSERT INTO folder_counts (folder_id, pending, answered, flagged, deleted)
SELECT f.id,
       count(m.id) FILTER (WHERE m.status = 'pending'),
       count(m.id) FILTER (WHERE m.status = 'answered'),
       count(m.id) FILTER (WHERE m.flagged AND NOT m.deleted),
       count(m.id) FILTER (WHERE m.deleted)
FROM folders f LEFT JOIN messages m ON m.folder_id = f.id
GROUP BY f.id;
