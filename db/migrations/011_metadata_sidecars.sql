-- Metadata sidecars: next to each archived call recording, voicemail and fax, a `<same name>.json`
-- with the item's metadata, for customers that want them (on by default).

ALTER TABLE customers
  ADD COLUMN sidecars boolean NOT NULL DEFAULT true;

ALTER TABLE archive_items
  -- The sidecar written with the item when it was archived; NULL when none was (SMS, or sidecars off).
  ADD COLUMN sidecar_path text,
  -- The verification run that last listed the sidecar.
  ADD COLUMN sidecar_verified_run bigint;

-- A verification matches each listed page against sidecars too, case-insensitively like Dropbox.
CREATE INDEX archive_items_sidecar_path ON archive_items (customer_id, lower(sidecar_path)) WHERE sidecar_path IS NOT NULL;
