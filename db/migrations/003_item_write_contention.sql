-- Upload attempts answered 429 too_many_write_operations: the pacing controller narrows the
-- customer's concurrent uploads when they contend for the account's write lock.
ALTER TABLE archive_items ADD COLUMN write_contention_count integer NOT NULL DEFAULT 0;
