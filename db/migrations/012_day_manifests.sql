-- Day manifests: per customer and UTC day, a CSV in its Dropbox listing every item archived that
-- day. This table says which days need one written again: a trigger marks a day dirty whenever an
-- item of it becomes archived or stops being archived, so no code path that archives needs to know.

ALTER TABLE customers
  -- Whether the customer gets day manifests; on by default.
  ADD COLUMN day_manifests boolean NOT NULL DEFAULT true;

CREATE TABLE manifests (
  customer_id   text NOT NULL REFERENCES customers (id),
  -- The UTC day the items occurred on, as the path template's {date} names it.
  day           date NOT NULL,
  -- The day changed since its manifest was last written (or none was).
  dirty         boolean NOT NULL DEFAULT true,
  -- Counts the day's changes, so a writer clears dirty only if nothing changed while it wrote.
  changes       bigint NOT NULL DEFAULT 1,
  written_at    timestamptz,
  item_count    bigint,
  content_hash  text,
  PRIMARY KEY (customer_id, day)
);

CREATE INDEX manifests_dirty ON manifests (customer_id, day) WHERE dirty;

-- A manifest pages through its day's archived items in this order.
CREATE INDEX archive_items_archived_by_occurred ON archive_items (customer_id, occurred_at, id) WHERE state = 'archived';

CREATE FUNCTION archive_items_mark_manifest_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO manifests AS m (customer_id, day)
  VALUES (NEW.customer_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date)
  ON CONFLICT (customer_id, day) DO UPDATE SET dirty = true, changes = m.changes + 1;
  RETURN NULL;
END;
$$;

CREATE TRIGGER archive_items_manifest_on_insert AFTER INSERT ON archive_items
  FOR EACH ROW WHEN (NEW.state = 'archived') EXECUTE FUNCTION archive_items_mark_manifest_dirty();
CREATE TRIGGER archive_items_manifest_on_update AFTER UPDATE ON archive_items
  FOR EACH ROW WHEN ((NEW.state = 'archived' OR OLD.state = 'archived')
                     AND (NEW.state, NEW.remote_path, NEW.content_hash) IS DISTINCT FROM (OLD.state, OLD.remote_path, OLD.content_hash))
  EXECUTE FUNCTION archive_items_mark_manifest_dirty();

-- Days archived before this migration get their manifests too.
INSERT INTO manifests (customer_id, day)
SELECT DISTINCT customer_id, (occurred_at AT TIME ZONE 'UTC')::date FROM archive_items WHERE state = 'archived';

-- The worker's role (008_audit_trail.sql) archives items, so its trigger writes manifests rows.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'archiver_worker') THEN
    GRANT SELECT, INSERT, UPDATE ON manifests TO archiver_worker;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'could not grant manifests to archiver_worker (%)', SQLERRM;
END;
$$;
