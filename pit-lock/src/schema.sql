-- The Lock Manager's schema and functions. Every statement is safe to run again: the service
-- runs this file at start, in one transaction, under an advisory lock.
--
-- Layout: one row per lock id in `pit_lock_fencing`, which holds the id's fencing token, its
-- holder (lease_id, owner, principal, acquired_at, expires_at; `lease_id IS NULL` when free)
-- and `queued`, how many places in the queue name the id. An id is held while `lease_id` is set
-- and `expires_at > now()`. An expired holder stays on the row until someone takes the id (a
-- v1 owner may still release it and hear 200, as from the existing service) or the sweep
-- clears it a day later.
--
-- Locking rule: a statement that writes several rows of `pit_lock_fencing` first locks them
-- sorted by lock_id, so two requests that share ids take turns and never deadlock; a statement
-- that writes one row needs no order.

CREATE TABLE IF NOT EXISTS pit_lock_fencing (
    lock_id text PRIMARY KEY,
    token bigint NOT NULL
);
ALTER TABLE pit_lock_fencing
    ADD COLUMN IF NOT EXISTS lease_id text,
    ADD COLUMN IF NOT EXISTS owner jsonb,
    ADD COLUMN IF NOT EXISTS principal text,
    ADD COLUMN IF NOT EXISTS acquired_at timestamptz,
    ADD COLUMN IF NOT EXISTS expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS queued integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS pit_lock_fencing_lease ON pit_lock_fencing (lease_id)
    WHERE lease_id IS NOT NULL;

-- Until PIT 0.1's redesign the holders were rows of a table `pit_locks`: move them onto their
-- ids' rows (keeping the larger token) and put a read-only view of the same name in its place.
DO $mig$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = 'pit_locks' AND c.relkind = 'r'
                  AND c.relnamespace = current_schema()::regnamespace) THEN
        INSERT INTO pit_lock_fencing AS f (lock_id, token, lease_id, owner, principal, acquired_at, expires_at)
            SELECT l.lock_id, l.token, l.lease_id, l.owner, l.principal, l.acquired_at, l.expires_at
              FROM pit_locks l ORDER BY l.lock_id
            ON CONFLICT (lock_id) DO UPDATE
               SET token = greatest(f.token, excluded.token), lease_id = excluded.lease_id,
                   owner = excluded.owner, principal = excluded.principal,
                   acquired_at = excluded.acquired_at, expires_at = excluded.expires_at;
        DROP TABLE pit_locks;
    END IF;
END
$mig$;

-- What is held, for people and scripts reading the database. Writing to it is refused with a
-- message: an instance older than this schema would otherwise keep a second, separate set of
-- locks (and its start-up migration fails on the view, so it never starts).
CREATE OR REPLACE VIEW pit_locks AS
    SELECT lock_id, lease_id, owner, token, expires_at, acquired_at, principal
      FROM pit_lock_fencing WHERE lease_id IS NOT NULL;
CREATE OR REPLACE FUNCTION pit_locks_read_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'pit_locks is a read-only view since the Lock Manager''s schema moved the holders onto pit_lock_fencing'
        USING HINT = 'Replace every Lock Manager instance with one of the same version or later.';
END
$fn$;
DROP TRIGGER IF EXISTS pit_locks_read_only ON pit_locks;
CREATE TRIGGER pit_locks_read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON pit_locks
    FOR EACH ROW EXECUTE FUNCTION pit_locks_read_only();

CREATE TABLE IF NOT EXISTS pit_lock_released (
    lease_id text PRIMARY KEY,
    held boolean NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pit_lock_released_at ON pit_lock_released (released_at);
ALTER TABLE pit_lock_released ADD COLUMN IF NOT EXISTS principal text;

-- A place in the queue, tied to a server session (pid, backend_start): the place is void once
-- that session is gone.
CREATE TABLE IF NOT EXISTS pit_lock_waiters (
    seq bigserial PRIMARY KEY,
    ids text[] NOT NULL,
    owner jsonb NOT NULL,
    pid integer NOT NULL,
    backend_start timestamptz NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
);

-- The former design's functions: an older instance still running fails on their absence
-- rather than acting on a layout it does not know.
DROP FUNCTION IF EXISTS pit_lock_try_acquire(text[], text, jsonb, double precision, text, bigint, integer, text, text);

-- One attempt to take every id of p_ids, in one round trip. r_kind says what happened:
--   `acquired`: one row per id, its token and expiry;
--   `renewed`:  (v1, p_v1_owner given) that owner held them already: their new expiry;
--   `blocked`:  each live holder, or one row without a holder when only earlier waiters are in
--               the way, with the number of live waiters ahead and the caller's place in the
--               queue (p_pid: the session a waiter's place is tied to, taken on its first
--               blocked try; p_seq: the place it has);
--   `unknown`:  an id has no row yet: the caller creates the rows (committed, holding no other
--               lock, so no two requests can deadlock over them) and asks again.
CREATE OR REPLACE FUNCTION pit_lock_take(
    p_ids text[], p_lease text, p_owner jsonb, p_ttl_ms double precision, p_principal text,
    p_seq bigint, p_pid integer, p_v1_owner text, p_only text)
RETURNS TABLE (r_kind text, r_lock_id text, r_owner jsonb, r_token bigint, r_expires_ms bigint,
               r_ahead bigint, r_seq bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_locked bigint;
    v_ahead bigint := 0;
    v_seq bigint := p_seq;
BEGIN
    -- Lock the ids' rows in a fixed order, then decide with them held. (The service first tries
    -- a single free id with one statement of its own, `TAKE_ONE` in pg.rs.)
    SELECT count(*) INTO v_locked FROM (
        SELECT 1 FROM pit_lock_fencing f WHERE f.lock_id = ANY(p_ids) ORDER BY f.lock_id FOR UPDATE) AS rows;
    IF v_locked < (SELECT count(DISTINCT i) FROM unnest(p_ids) AS i) THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::text, NULL::jsonb, NULL::bigint, NULL::bigint,
                            NULL::bigint, v_seq;
        RETURN;
    END IF;
    IF p_v1_owner IS NOT NULL THEN
        RETURN QUERY
            UPDATE pit_lock_fencing AS f SET expires_at = now() + p_ttl_ms * interval '1 millisecond'
             WHERE f.lock_id = ANY(p_ids) AND f.lease_id IS NOT NULL AND f.expires_at > now()
               AND f.owner->>'name' = p_v1_owner
               AND (p_only IS NULL OR f.principal IS NOT DISTINCT FROM p_only)
            RETURNING 'renewed'::text, f.lock_id, f.owner, f.token,
                      (extract(epoch FROM f.expires_at) * 1000)::bigint, 0::bigint, NULL::bigint;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    -- `queued` counts places whose session may be gone: only the live ones count as ahead.
    IF EXISTS (SELECT 1 FROM pit_lock_fencing f WHERE f.lock_id = ANY(p_ids) AND f.queued > 0) THEN
        SELECT count(*) INTO v_ahead FROM pit_lock_waiters w
         WHERE w.ids && p_ids AND (v_seq IS NULL OR w.seq < v_seq)
           AND EXISTS (SELECT 1 FROM pg_stat_activity a
                        WHERE a.pid = w.pid AND a.backend_start = w.backend_start);
    END IF;
    IF v_ahead > 0 OR EXISTS (SELECT 1 FROM pit_lock_fencing f WHERE f.lock_id = ANY(p_ids)
                                 AND f.lease_id IS NOT NULL AND f.expires_at > now()) THEN
        IF v_seq IS NULL AND p_pid IS NOT NULL THEN
            INSERT INTO pit_lock_waiters (ids, owner, pid, backend_start)
                SELECT p_ids, p_owner, a.pid, a.backend_start FROM pg_stat_activity a WHERE a.pid = p_pid
                RETURNING seq INTO v_seq;
            IF v_seq IS NOT NULL THEN
                UPDATE pit_lock_fencing f SET queued = f.queued + 1 WHERE f.lock_id = ANY(p_ids);
            END IF;
        END IF;
        RETURN QUERY
            SELECT 'blocked'::text, f.lock_id, f.owner, NULL::bigint,
                   (extract(epoch FROM f.expires_at) * 1000)::bigint, v_ahead, v_seq
              FROM pit_lock_fencing f
             WHERE f.lock_id = ANY(p_ids) AND f.lease_id IS NOT NULL AND f.expires_at > now();
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'blocked'::text, NULL::text, NULL::jsonb, NULL::bigint, NULL::bigint,
                                v_ahead, v_seq;
        END IF;
        RETURN;
    END IF;
    IF v_seq IS NOT NULL THEN
        DELETE FROM pit_lock_waiters w WHERE w.seq = v_seq;
        IF FOUND THEN
            UPDATE pit_lock_fencing f SET queued = greatest(f.queued - 1, 0) WHERE f.lock_id = ANY(p_ids);
        END IF;
    END IF;
    -- Tokens only grow: a row's token is only ever incremented, under its lock.
    RETURN QUERY
        UPDATE pit_lock_fencing AS f
           SET token = f.token + 1, lease_id = p_lease, owner = p_owner, principal = p_principal,
               acquired_at = now(), expires_at = now() + p_ttl_ms * interval '1 millisecond'
         WHERE f.lock_id = ANY(p_ids)
        RETURNING 'acquired'::text, f.lock_id, f.owner, f.token,
                  (extract(epoch FROM f.expires_at) * 1000)::bigint, 0::bigint, NULL::bigint;
END
$fn$;

-- Wakes the first live waiter of each of p_ids: one NOTIFY (delivered at commit) with a line
-- `<id>\t<seq>` per id that has one. Only that waiter can be served next (a request waits for
-- every earlier one that wants any of its ids), so the others sleep on; when it leaves the
-- queue without the id, its leaving wakes the next. Callers hold the ids' rows (or have just
-- written them), so no place is added to those queues meanwhile.
CREATE OR REPLACE FUNCTION pit_lock_wake(p_ids text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_payload text;
BEGIN
    IF p_ids IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(h.lock_id || E'\t' || h.seq, E'\n') INTO v_payload FROM (
        SELECT i AS lock_id,
               (SELECT min(w.seq) FROM pit_lock_waiters w
                 WHERE i = ANY(w.ids) AND EXISTS (SELECT 1 FROM pg_stat_activity a
                                                   WHERE a.pid = w.pid AND a.backend_start = w.backend_start)) AS seq
          FROM (SELECT DISTINCT unnest(p_ids) AS i) AS ids) AS h
     WHERE h.seq IS NOT NULL;
    IF v_payload IS NOT NULL THEN
        PERFORM pg_notify('pit_locks_released', v_payload);
    END IF;
END
$fn$;

-- A v2 release in one round trip: frees the lease's ids (waking their waiters at commit) and
-- remembers the answer for a day. r_outcome: `released` (r_held: whether it was still held),
-- `again` (released before: the same answer), `not-holder` (another principal's), or `gone`.
CREATE OR REPLACE FUNCTION pit_lock_release(p_lease text, p_principal text)
RETURNS TABLE (r_outcome text, r_held boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_held boolean;
    v_principal text;
    v_wake text[];
BEGIN
    WITH mine AS (
        SELECT f.lock_id FROM pit_lock_fencing f
         WHERE f.lease_id = p_lease
           AND (p_principal IS NULL OR f.principal IS NOT DISTINCT FROM p_principal)
         ORDER BY f.lock_id FOR UPDATE),
    freed AS (
        UPDATE pit_lock_fencing f SET lease_id = NULL FROM mine
         WHERE f.lock_id = mine.lock_id AND f.lease_id = p_lease
        RETURNING f.lock_id, f.expires_at > now() AS live, f.principal, f.queued)
    SELECT bool_or(freed.live), min(freed.principal),
           array_agg(freed.lock_id) FILTER (WHERE freed.queued > 0)
      INTO v_held, v_principal, v_wake FROM freed;
    IF v_held IS NOT NULL THEN
        INSERT INTO pit_lock_released (lease_id, held, principal) VALUES (p_lease, v_held, v_principal)
            ON CONFLICT (lease_id) DO NOTHING;
        PERFORM pit_lock_wake(v_wake);
        RETURN QUERY SELECT 'released'::text, v_held;
        RETURN;
    END IF;
    IF p_principal IS NOT NULL AND EXISTS (
        SELECT 1 FROM pit_lock_fencing f WHERE f.lease_id = p_lease AND f.expires_at > now()
           AND f.principal IS DISTINCT FROM p_principal) THEN
        RETURN QUERY SELECT 'not-holder'::text, false;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT 'again'::text, r.held FROM pit_lock_released r
         WHERE r.lease_id = p_lease
           AND (p_principal IS NULL OR r.principal IS NOT DISTINCT FROM p_principal);
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'gone'::text, false;
    END IF;
END
$fn$;

-- Leaves the queue: deletes place p_seq, and wakes the next waiter of each of its ids.
CREATE OR REPLACE FUNCTION pit_lock_leave(p_seq bigint) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids text[];
BEGIN
    SELECT w.ids INTO v_ids FROM pit_lock_waiters w WHERE w.seq = p_seq;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM pit_lock_fencing f WHERE f.lock_id = ANY(v_ids) ORDER BY f.lock_id FOR UPDATE;
    DELETE FROM pit_lock_waiters w WHERE w.seq = p_seq;
    IF FOUND THEN
        UPDATE pit_lock_fencing f SET queued = greatest(f.queued - 1, 0) WHERE f.lock_id = ANY(v_ids);
        PERFORM pit_lock_wake(v_ids);
    END IF;
END
$fn$;

-- Work kept off the hot path, run at most once a minute per instance: expired holders nobody
-- asked for again within a day, releases remembered for a day, the places of sessions that are
-- gone, and the `queued` counts recounted from the places left.
CREATE OR REPLACE FUNCTION pit_lock_sweep() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM pit_lock_released WHERE released_at < now() - interval '1 day';
    DELETE FROM pit_lock_waiters w WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid AND a.backend_start = w.backend_start);
    -- Only the rows locked here (in order) are written, so the sweep cannot deadlock with a
    -- request.
    WITH due AS (
        SELECT f.lock_id FROM pit_lock_fencing f
         WHERE f.queued > 0 OR (f.lease_id IS NOT NULL AND f.expires_at < now() - interval '1 day')
         ORDER BY f.lock_id FOR UPDATE)
    UPDATE pit_lock_fencing f
       SET lease_id = CASE WHEN f.expires_at < now() - interval '1 day' THEN NULL ELSE f.lease_id END,
           queued = (SELECT count(*) FROM pit_lock_waiters w WHERE f.lock_id = ANY(w.ids))
      FROM due WHERE f.lock_id = due.lock_id;
END
$fn$;
