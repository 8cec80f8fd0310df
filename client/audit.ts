// `archiver audit verify|export`, and the audit row every operator action leaves behind.

import { once } from 'node:events';
import { userInfo } from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  auditEvents,
  auditHead,
  OPERATOR_CHAIN,
  recordAuditEvent,
  verifyAuditChain,
  type AuditRow,
} from '../db/audit.js';
import { getCustomer } from '../db/customers.js';
import type { Db } from '../db/pool.js';
import { OperatorError } from './archiver-client.js';

/** A customer's audit chain does not hold: a row was changed or deleted; exit 1. */
export class AuditTrailBroken extends Error {
  override name = 'AuditTrailBroken';
}

type WithDb = <T>(fn: (db: Db) => Promise<T>) => Promise<T>;

/** The commands that change something, whose every successful run is recorded; reads are not. */
const AUDITED_COMMANDS = new Set([
  'customers add',
  'start',
  'pause',
  'resume',
  'reconnect',
  'connect',
  'set-limits',
  'retry-failed',
  'stop',
  'deploy set-current',
  'rotate-secrets',
  // It may re-queue items, each of which gets an audit row of its own.
  'verify',
]);

/** Option names whose values are never recorded: only that one was given. */
const SECRET_OPTION = /token|secret|password|key|code/i;

/** Who runs the CLI: ARCHIVER_OPERATOR, else the OS user. */
export function operatorIdentity(env: NodeJS.ProcessEnv = process.env): string {
  const named = env.ARCHIVER_OPERATOR?.trim();
  if (named) return named;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** `command`'s name with its parents', below the program: "customers add". */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** An option's value as the trail keeps it: dates as ISO 8601, secrets as "[redacted]". */
function recordable(name: string, value: unknown): unknown {
  if (SECRET_OPTION.test(name)) return '[redacted]';
  return value instanceof Date ? value.toISOString() : value;
}

/** The operator action `command` just did, as an audit event's command, customer and arguments. */
export function operatorAction(command: Command): { command: string; customerId: string; args: object } {
  const [first] = command.registeredArguments;
  const values = command.processedArgs as unknown[];
  const customerId = first?.name() === 'id' && typeof values[0] === 'string' ? values[0] : OPERATOR_CHAIN;
  const args: Record<string, unknown> = {};
  command.registeredArguments.forEach((arg, i) => {
    if (values[i] !== undefined) args[arg.name()] = recordable(arg.name(), values[i]);
  });
  for (const [name, value] of Object.entries(command.opts())) {
    if (value !== undefined) args[name] = recordable(name, value);
  }
  return { command: commandPath(command), customerId, args };
}

/** A time given to --since or --until: a date (UTC midnight) or an ISO 8601 time with Z or an offset. */
function auditTime(name: string) {
  return (value: string): Date => {
    const time = new Date(value);
    const shaped = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(value);
    if (!shaped || Number.isNaN(time.getTime()))
      throw new InvalidArgumentError(
        `${name} must be a date like 2026-11-01 (UTC) or a time like 2026-11-01T12:00:00Z (ISO 8601, with Z or an offset).`,
      );
    return time;
  };
}

const CSV_COLUMNS = [
  'seq',
  'recorded_at',
  'customer_id',
  'kind',
  'item_id',
  'remote_path',
  'content_hash',
  'remote_rev',
  'attempt',
  'actor',
  'command',
  'details',
  'prev_hash',
  'hash',
] as const;

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row as exported: the stored fields, snake_case, so an auditor can recompute the hashes. */
function exported(row: AuditRow): Record<(typeof CSV_COLUMNS)[number], unknown> {
  return {
    seq: row.seq,
    recorded_at: row.recordedAt.toISOString(),
    customer_id: row.customerId,
    kind: row.kind,
    item_id: row.itemId,
    remote_path: row.remotePath,
    content_hash: row.contentHash,
    remote_rev: row.remoteRev,
    attempt: row.attempt,
    actor: row.actor,
    command: row.command,
    details: row.details,
    prev_hash: row.prevHash,
    hash: row.hash,
  };
}

/** Writes to stdout, waiting when its buffer is full, so a slow reader holds the export back instead of memory. */
async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}

/** Fails unless `id` is a customer or has a trail (a removed customer's trail stays verifiable). */
async function requireChain(db: Db, id: string): Promise<void> {
  if (id === OPERATOR_CHAIN || (await getCustomer(db, id)) || (await auditHead(db, id))) return;
  throw new OperatorError(`unknown customer "${id}"`);
}

/** Registers `archiver audit …` and the hook that records every operator action on the customer's chain. */
export function registerAuditTrail(program: Command, withDb: WithDb, databaseConfigured: () => boolean): void {
  program.hook('postAction', async (_program, action) => {
    const { command, customerId, args } = operatorAction(action);
    if (!AUDITED_COMMANDS.has(command)) return;
    // A command that needs only Temporal (deploy, pause) has already done its work; without a
    // database to record it in, say so rather than report the command as failed.
    if (!databaseConfigured()) {
      console.error(
        `archiver: ${command} is done, but not recorded on the audit trail: DATABASE_URL is not set (set it so operator actions are recorded)`,
      );
      return;
    }
    await withDb((db) =>
      recordAuditEvent(db, {
        customerId,
        kind: 'operator.action',
        actor: operatorIdentity(),
        command,
        details: { args },
      }),
    );
  });

  const audit = program
    .command('audit')
    .description(
      "Check and export the audit trail: every archival, every item that failed and every operator action, per customer, hash-chained. Use '*' as the id for actions on no one customer (start --all, rotate-secrets, deploy).",
    );
  audit
    .command('verify')
    .argument('<id>', "customer id, or '*'")
    .description(
      "Recompute the customer's hash chain from its first row. Exits 1 naming the first row that was changed, or follows one that was deleted.",
    )
    .action(async (id: string) => {
      const check = await withDb(async (db) => {
        await requireChain(db, id);
        return verifyAuditChain(db, id);
      });
      if (!check.intact)
        throw new AuditTrailBroken(
          `audit trail of ${id} is broken at row ${check.seq}${check.id ? ` (id ${check.id})` : ''}: ${check.problem}; the ${check.rows} rows before it are intact`,
        );
      console.log(`audit trail of ${id}: intact, ${check.rows} rows`);
    });
  audit
    .command('export')
    .argument('<id>', "customer id, or '*'")
    .description("Stream the customer's audit trail to stdout, oldest first, for an auditor.")
    .option('--since <time>', 'only rows recorded at or after this time (a date is UTC midnight)', auditTime('--since'))
    .option('--until <time>', 'only rows recorded before this time (a date is UTC midnight)', auditTime('--until'))
    .addOption(new Option('--format <format>', 'output format').choices(['csv', 'jsonl']).default('jsonl'))
    .action(async (id: string, opts: { since?: Date; until?: Date; format: 'csv' | 'jsonl' }) => {
      if (opts.since && opts.until && opts.since >= opts.until)
        throw new OperatorError('--since must be before --until');
      await withDb(async (db) => {
        await requireChain(db, id);
        if (opts.format === 'csv') await writeOut(`${CSV_COLUMNS.join(',')}\n`);
        for await (const row of auditEvents(db, id, opts)) {
          const fields = exported(row);
          await writeOut(
            opts.format === 'csv'
              ? `${CSV_COLUMNS.map((c) => csvField(fields[c])).join(',')}\n`
              : `${JSON.stringify(fields)}\n`,
          );
        }
      });
    });
}
