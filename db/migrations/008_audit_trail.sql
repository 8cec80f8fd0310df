-- The audit trail: an append-only record of every archival, every item that became failed and
-- every operator action, per customer, each row chained to the one before it by a SHA-256 hash
-- (db/audit.ts computes it over a canonical serialization of the row plus the previous hash), so
-- a changed or deleted row is detectable with `archiver audit verify <id>`. Since 2022 such a
-- trail is SEC 17a-4's alternative to WORM storage, which Dropbox is not.

CREATE TABLE audit_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The chain the row belongs to: a customer id, or '*' for operator actions on no one customer
  -- (start --all, rotate-secrets, deploy). No foreign key: the trail outlives any registry row.
  customer_id  text NOT NULL,
  -- Position in the customer's chain, from 1 without gaps.
  seq          bigint NOT NULL CHECK (seq >= 1),
  -- What happened: item.archived, item.failed, operator.action; open for more (e.g. item.rearchived
  -- from reconciliation), so it is checked only for its shape.
  kind         text NOT NULL CHECK (kind ~ '^[a-z]+(\.[a-z_]+)+$'),
  item_id      bigint,
  remote_path  text,
  content_hash text,
  remote_rev   text,
  -- The item's upload attempts, this one included.
  attempt      integer,
  -- Who did it: the worker's identity (pid@host) or the operator (ARCHIVER_OPERATOR, else the OS user).
  actor        text NOT NULL,
  -- The CLI command of an operator action, e.g. "customers add".
  command      text,
  -- The rest: a failure's reason, an operator's arguments (never a secret), sizes.
  details      jsonb NOT NULL DEFAULT '{}'::jsonb,
  recorded_at  timestamptz NOT NULL,
  prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash         text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  UNIQUE (customer_id, seq)
);

CREATE INDEX audit_events_by_time ON audit_events (customer_id, recorded_at);

-- Each chain's head: the last row's seq and hash. Appending locks the head row (an upsert), so two
-- workers archiving the same customer's items at once take turns instead of forking the chain.
CREATE TABLE audit_heads (
  customer_id text PRIMARY KEY,
  seq         bigint NOT NULL DEFAULT 0,
  hash        text NOT NULL DEFAULT repeat('0', 64)
);

-- Rows are never changed or removed, not even by the table's owner, unless someone disables this
-- trigger first (which a superuser can, and which is then visible in the chain).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;

-- The role the worker may run as: its work on items and customers, and only INSERT (and SELECT)
-- on the trail. Roles belong to the whole server, so another database's migration may create it
-- at the same moment; a server that does not let the migrating user create roles skips this, with
-- a notice, and the operators create the role themselves.
DO $$
BEGIN
  BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'archiver_worker') THEN
      CREATE ROLE archiver_worker NOLOGIN;
    END IF;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
  GRANT SELECT, INSERT, UPDATE ON customers, archive_items TO archiver_worker;
  GRANT SELECT ON schema_migrations TO archiver_worker;
  GRANT SELECT, INSERT ON audit_events TO archiver_worker;
  GRANT SELECT, INSERT, UPDATE ON audit_heads TO archiver_worker;
  REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM archiver_worker;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'archiver_worker role not set up (%); create it with the grants in 008_audit_trail.sql', SQLERRM;
END;
$$;
