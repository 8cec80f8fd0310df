// `archiver rotate-secrets`: seals every customer's Dropbox tokens again under the keyring's
// current key, so an older key can then be dropped from ARCHIVER_SECRET_KEYS.

import type { Command } from 'commander';
import type { Db } from '../db/pool.js';
import { customerCount, customerIdsAfter, resealCustomerTokens } from '../db/sealed-tokens.js';
import type { Keyring } from '../secrets/keyring.js';

/** Customers re-sealed between two progress lines, each in its own short transaction. */
const PAGE = 100;

export interface RotationReport {
  /** Customers with a token under an older key, now under the current one. */
  rotated: number;
  /** Customers whose tokens were all under the current key already (or who have none). */
  current: number;
  /** Customers with a legacy plaintext token, now sealed. */
  sealed: number;
  /** Customers with a token that cannot be opened (unknown key id, wrong key, changed), left as they were. */
  failed: { customerId: string; reason: string }[];
}

/** Some customers' tokens could not be opened, so the older keys must stay; the message names them. */
export class SecretsNotRotated extends Error {
  override name = 'SecretsNotRotated';
}

/**
 * Walks every customer in id order and re-seals its tokens under `keyring`'s current key,
 * calling `progress` after each page. A customer added meanwhile is sealed under the current key
 * by whoever adds it.
 */
export async function rotateSecrets(
  db: Db,
  keyring: Keyring,
  progress: (done: number, total: number, report: RotationReport) => void = () => undefined,
): Promise<RotationReport> {
  const report: RotationReport = { rotated: 0, current: 0, sealed: 0, failed: [] };
  const total = await customerCount(db);
  let done = 0;
  let after: string | null = null;
  for (;;) {
    const ids = await customerIdsAfter(db, after, PAGE);
    if (ids.length === 0) break;
    for (const id of ids) {
      const result = await resealCustomerTokens(db, keyring, id);
      if (result.outcome === 'failed')
        report.failed.push({ customerId: id, reason: result.errors.map((e) => e.message).join('; ') });
      else if (result.outcome !== 'missing') report[result.outcome] += 1;
      done += 1;
    }
    after = ids[ids.length - 1] ?? null;
    progress(done, Math.max(total, done), report);
  }
  return report;
}

const counts = (r: RotationReport): string =>
  `rotated ${r.rotated}, already current ${r.current}, plaintext sealed ${r.sealed}, failed ${r.failed.length}`;

/**
 * Registers the command on the CLI. `withDb` and `keyring` are the CLI's: its database (migrated)
 * and the keyring from ARCHIVER_SECRET_KEYS, loaded before Postgres is touched.
 */
export function registerRotateSecrets(
  program: Command,
  withDb: <T>(fn: (db: Db) => Promise<T>) => Promise<T>,
  keyring: () => Keyring,
): void {
  program
    .command('rotate-secrets')
    .description(
      "Seal every customer's Dropbox tokens again under the current key (the first in ARCHIVER_SECRET_KEYS): tokens under older keys and legacy plaintext ones. Exits 1, naming them, if some customer's tokens cannot be opened; those rows stay as they were.",
    )
    .addHelpText(
      'after',
      [
        '',
        'Rotating the key:',
        '  1. generate a key: openssl rand -base64 32',
        '  2. put it first in ARCHIVER_SECRET_KEYS (new-id:<key>,old-id:<old key>) and restart the workers,',
        '     so everything new is sealed under it',
        '  3. run archiver rotate-secrets until it reports failed 0',
        '  4. drop the old key from ARCHIVER_SECRET_KEYS and restart the workers',
      ].join('\n'),
    )
    .action(async () => {
      const ring = keyring();
      const report = await withDb((db) =>
        rotateSecrets(db, ring, (done, total, r) =>
          console.error(`rotate-secrets: ${done}/${total} customers (${counts(r)})`),
        ),
      );
      for (const f of report.failed) console.error(`not rotated: ${f.reason}`);
      console.log(`tokens under key ${ring.current.id}: ${counts(report)}`);
      if (report.failed.length > 0)
        throw new SecretsNotRotated(
          `${report.failed.length} customers' tokens cannot be opened and were left as they were: ${report.failed.map((f) => f.customerId).join(', ')}; keep their key in ARCHIVER_SECRET_KEYS, or reconnect them`,
        );
    });
}
