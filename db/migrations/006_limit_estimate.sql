-- The pacing controller's estimate of the customer's Dropbox upload limit (uploads/s), kept
-- whenever the workflow learns a new one, so a new run of the customer's workflow (after stop and
-- start, a reset, or a new workflow) starts at it instead of probing up from the initial rate.
ALTER TABLE customers
  ADD COLUMN limit_estimate_per_second double precision
    CHECK (limit_estimate_per_second IS NULL OR limit_estimate_per_second > 0),
  ADD COLUMN limit_estimate_at timestamptz;
