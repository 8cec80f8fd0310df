-- A customer's time zone: the day an item belongs to (its path template's {date} and its day
-- manifest) is the day it occurred on in the customer's zone. UTC for every existing customer, so
-- nothing archived moves. `archiver customers add --time-zone` sets it, and refuses to change it once
-- the customer has anything archived, which would move day folders mid-archive.

ALTER TABLE customers
  -- An IANA time zone name, such as Europe/Berlin.
  ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';

-- The zone must be one Postgres knows, or the manifest trigger below would fail every archived item
-- of the customer. This is a trigger and not a CHECK: a CHECK should be immutable, but
-- pg_timezone_names follows the server's tzdata, which an upgrade may change (and a restore would
-- then fail on the constraint); and a CHECK runs on every update of the row, which the workers make
-- often (throttles, tokens, limits), while reading pg_timezone_names lists the zone files. The CLI
-- also checks the name with Intl, which the path template's {date} uses (activities/paths.ts).
CREATE FUNCTION customers_check_time_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.time_zone) THEN
    RAISE EXCEPTION 'time zone "%" of customer % is not an IANA time zone this Postgres knows (pg_timezone_names); give one like Europe/Berlin', NEW.time_zone, NEW.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER customers_time_zone_on_insert BEFORE INSERT ON customers
  FOR EACH ROW WHEN (NEW.time_zone <> 'UTC') EXECUTE FUNCTION customers_check_time_zone();
CREATE TRIGGER customers_time_zone_on_update BEFORE UPDATE OF time_zone ON customers
  FOR EACH ROW WHEN (NEW.time_zone IS DISTINCT FROM OLD.time_zone AND NEW.time_zone <> 'UTC')
  EXECUTE FUNCTION customers_check_time_zone();

-- The manifest day of an item is its day in its customer's zone (one lookup by primary key per
-- archived item). Migration 012's triggers call this function, so they keep working unchanged.
CREATE OR REPLACE FUNCTION archive_items_mark_manifest_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO manifests AS m (customer_id, day)
  SELECT NEW.customer_id, (NEW.occurred_at AT TIME ZONE c.time_zone)::date FROM customers c WHERE c.id = NEW.customer_id
  ON CONFLICT (customer_id, day) DO UPDATE SET dirty = true, changes = m.changes + 1;
  RETURN NULL;
END;
$$;

COMMENT ON COLUMN manifests.day IS 'The day the items occurred on in the customer''s time zone (customers.time_zone), as the path template''s {date} names it.';
