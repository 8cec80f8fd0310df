-- Credentials an operator gave with `archiver reconnect`, kept apart from the stored ones until
-- Dropbox accepts them: the customer's reconnect update checks them and only then promotes them,
-- in one statement, so a failed reconnect leaves the customer's credentials exactly as they were.
-- candidate_id names one reconnect, so a later one cannot have an earlier one's check promote it.
ALTER TABLE customers
  ADD COLUMN candidate_id uuid,
  ADD COLUMN candidate_access_token text,
  ADD COLUMN candidate_refresh_token text,
  ADD CONSTRAINT customers_candidate_has_a_token
    CHECK (candidate_id IS NULL OR candidate_access_token IS NOT NULL OR candidate_refresh_token IS NOT NULL);
