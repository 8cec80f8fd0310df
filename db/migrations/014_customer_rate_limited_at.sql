-- When the customer's Dropbox last answered 429 too_many_requests. throttled_until holds every
-- upload back for the Retry-After; this also stops a slice whose start times were planned before
-- that 429, at the pace that met it: the workflow plans its items again at the pace it learns.
ALTER TABLE customers
  ADD COLUMN rate_limited_at timestamptz;
