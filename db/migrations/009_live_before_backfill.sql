-- Live items before backfill. A customer that connects often has months of history to archive
-- while new calls keep arriving: the lease takes items that occurred within the worker's live
-- window (ARCHIVER_LIVE_WINDOW) before older ones, and never those before the customer's
-- backfill_since.

-- How far back the customer's archive goes (`archiver customers add --backfill-since`); NULL: all
-- of its history.
ALTER TABLE customers ADD COLUMN backfill_since timestamptz;

-- skipped: occurred before the customer's backfill_since, so never archived. Kept and counted, but
-- out of the claimable indexes, so a long history before the cut-off costs the lease nothing.
ALTER TABLE archive_items DROP CONSTRAINT archive_items_state_check;
ALTER TABLE archive_items
  ADD CONSTRAINT archive_items_state_check CHECK (state IN ('pending', 'leased', 'archived', 'failed', 'skipped'));

-- An item inserted after the cut-off was set (the sync may write the old history later) is skipped
-- as it arrives; items already there are skipped by `customers add` (skipBeforeBackfill).
CREATE FUNCTION archive_items_skip_before_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 'pending'
     AND NEW.occurred_at < (SELECT backfill_since FROM customers WHERE id = NEW.customer_id) THEN
    NEW.state := 'skipped';
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER archive_items_skip_before_backfill BEFORE INSERT ON archive_items
  FOR EACH ROW EXECUTE FUNCTION archive_items_skip_before_backfill();

-- The lease reads a customer's claimable rows by when they occurred: the live ones (within the
-- window) by one range, then the backfill (before it) by another, each in index order, so the
-- lease never sorts a backlog nor walks other customers' or archived rows.
CREATE INDEX archive_items_claimable_by_occurred ON archive_items (customer_id, occurred_at, id)
  WHERE state IN ('pending', 'leased');
