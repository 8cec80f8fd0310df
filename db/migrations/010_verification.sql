-- Reconciliation against the customer's Dropbox: each verification run lists the customer's
-- archive folder page by page and compares it with archive_items, marking on each row what it saw,
-- so memory never grows with the folder. Archived items whose file is missing or altered go back
-- to pending with a reason.

CREATE TABLE verification_runs (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id            text NOT NULL REFERENCES customers (id),
  started_at             timestamptz NOT NULL DEFAULT now(),
  -- When the run last listed a page; a run unfinished and silent for long was abandoned.
  progressed_at          timestamptz NOT NULL DEFAULT now(),
  finished_at            timestamptz,
  -- Files listed so far (progress while running).
  listed                 bigint NOT NULL DEFAULT 0,
  -- Archived items the run expected to find (archived before it started).
  expected               bigint,
  present                bigint,
  missing                bigint,
  changed                bigint,
  requeued               bigint,
  -- Files in the folder that no archived item accounts for; counted, never touched.
  unknown                bigint NOT NULL DEFAULT 0,
  -- A few of their paths, for the operator.
  unknown_sample         text[] NOT NULL DEFAULT '{}',
  -- The earliest archive time among the missing and changed items.
  oldest_discrepancy_at  timestamptz
);

CREATE INDEX verification_runs_latest ON verification_runs (customer_id, id DESC);

ALTER TABLE archive_items
  -- The verification run that last listed this item's file, and the content hash it listed.
  ADD COLUMN verified_run bigint,
  ADD COLUMN verified_hash text,
  -- Why a verification put the archived item back to pending; its next upload overwrites the path.
  ADD COLUMN requeue_reason text,
  ADD COLUMN requeued_at timestamptz;

-- Each listed page is matched by path, case-insensitively as Dropbox compares paths.
CREATE INDEX archive_items_remote_path ON archive_items (customer_id, lower(remote_path)) WHERE remote_path IS NOT NULL;

-- The worker's role (008_audit_trail.sql) records verification runs too.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'archiver_worker') THEN
    GRANT SELECT, INSERT, UPDATE ON verification_runs TO archiver_worker;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'could not grant verification_runs to archiver_worker (%)', SQLERRM;
END;
$$;
