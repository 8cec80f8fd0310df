-- Customers' Dropbox tokens are encrypted at rest: each token column holds sealed text,
-- `v1:<key id>:<base64 of iv | ciphertext | tag>` (AES-256-GCM under a key derived from
-- ARCHIVER_SECRET_KEYS, bound to the customer and the column; see db/sealed-tokens.ts).
--
-- SQL cannot encrypt with the operators' keyring, so this migration changes no row. Rows written
-- before it hold plaintext tokens, which still read as they are; the worker seals them at start-up
-- (sealPlaintextTokens: in one transaction, selecting FOR UPDATE only the rows with a token not
-- starting with 'v1:'), and `archiver rotate-secrets` does too.
COMMENT ON COLUMN customers.dropbox_access_token IS
  'Sealed text (v1:<key id>:…, AES-256-GCM, bound to customer:<id>:dropbox_access_token); plaintext only in rows not yet sealed by the worker';
COMMENT ON COLUMN customers.dropbox_refresh_token IS
  'Sealed text (v1:<key id>:…, AES-256-GCM, bound to customer:<id>:dropbox_refresh_token); plaintext only in rows not yet sealed by the worker';
COMMENT ON COLUMN customers.candidate_access_token IS
  'Sealed text (v1:<key id>:…, AES-256-GCM, bound to customer:<id>:candidate_access_token); plaintext only in rows not yet sealed by the worker';
COMMENT ON COLUMN customers.candidate_refresh_token IS
  'Sealed text (v1:<key id>:…, AES-256-GCM, bound to customer:<id>:candidate_refresh_token); plaintext only in rows not yet sealed by the worker';
