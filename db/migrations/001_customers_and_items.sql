-- Customers and the items to archive into their Dropbox.

CREATE TABLE customers (
  -- A business id, used verbatim in the workflow id archiver-customer-<id>.
  id                     text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  name                   text NOT NULL,
  status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disconnected')),
  -- Credentials stay here and are read by activities; they never enter Temporal payloads.
  dropbox_access_token   text,
  dropbox_refresh_token  text,
  dropbox_token_expires_at timestamptz,
  folder_root            text NOT NULL DEFAULT '/Archiver',
  -- While a customer's Dropbox answers 429, every upload for that customer waits until this time,
  -- so one throttled request pauses the whole customer and not just one item.
  throttled_until        timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE archive_items (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id     text NOT NULL REFERENCES customers (id),
  kind            text NOT NULL CHECK (kind IN ('call_recording', 'voicemail', 'fax', 'sms')),
  occurred_at     timestamptz NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- Media items are fetched from source_url; SMS carry their text in body.
  source_url      text,
  body            text,
  size_bytes      bigint,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'archived', 'failed')),
  lease_token     uuid,
  lease_expires_at timestamptz,
  attempts        integer NOT NULL DEFAULT 0,
  -- Upload attempts answered 429, so the pacing controller and operators can see throttling.
  rate_limited_count integer NOT NULL DEFAULT 0,
  remote_path     text,
  remote_rev      text,
  content_hash    text,
  archived_at     timestamptz,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK ((source_url IS NULL) <> (body IS NULL)),
  CHECK (state <> 'leased' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CHECK (state <> 'archived' OR (remote_path IS NOT NULL AND content_hash IS NOT NULL))
);

-- Leasing scans one customer's pending (or expired leased) rows oldest first.
CREATE INDEX archive_items_claimable ON archive_items (customer_id, id) WHERE state IN ('pending', 'leased');
CREATE INDEX archive_items_by_state ON archive_items (customer_id, state);

-- New items wake their customer's workflow through the notifier.
CREATE FUNCTION archive_items_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('archive_items', NEW.customer_id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER archive_items_notify AFTER INSERT ON archive_items
  FOR EACH ROW EXECUTE FUNCTION archive_items_notify();
