-- An item that keeps failing transiently (its source is down, Dropbox keeps erring) gives its
-- upload slot back and waits on its own row until next_attempt_at, with exponential backoff;
-- after too many failed attempts, or too long, it becomes failed and visible.
ALTER TABLE archive_items
  -- Consecutive transient failures of this item (a 429 is not one): sets the backoff and the give-up.
  ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN first_failed_at timestamptz,
  -- A pending item is not leased before this time.
  ADD COLUMN next_attempt_at timestamptz,
  -- When last_error was written.
  ADD COLUMN last_error_at timestamptz;
