/** `npm run archiver -- <command>`: operate Archiver's customers. */
import { Command, CommanderError, Option, type HelpContext } from 'commander';
import type { Client } from '@temporalio/client';
import { postgresFailure } from '../db/connection-failures.js';
import { createPool, dbFromPool, type Db } from '../db/pool.js';
import {
  getCustomer,
  hasDropboxCredentials,
  listCustomers,
  markDisconnected,
  storeCandidateCredentials,
  clearCandidateCredentials,
  setTimeZone,
  upsertCustomer,
} from '../db/customers.js';
import { requeueFailed, skipBeforeBackfill, type ItemKind } from '../db/items.js';
import {
  lastFinishedVerifications,
  latestVerificationRun,
  verificationRun,
  type VerificationRun,
} from '../db/verification.js';
import { DEFAULT_PATH_TEMPLATE } from '../db/path-template.js';
import { migrate } from '../db/migrate.js';
import { connectClient } from '../temporal/connection.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { loadConfig, loadSecretKeyring, requireDatabaseUrl, type ArchiverConfig } from '../workers/config.js';
import type { Keyring } from '../secrets/keyring.js';
import { EXIT_CONFIGURATION, exitCodeFor, failureMessage } from '../workers/startup.js';
import { customerIdOf } from '../workflows/names.js';
import type { CommitMode } from '../workflows/batch.js';
import type { CustomerStatus } from '../workflows/messages.js';
import {
  customerStatus,
  CustomerRefused,
  isRunning,
  OperatorError,
  pauseCustomer,
  reconnectCustomer,
  resumeCustomer,
  setCustomerLimits,
  startCustomer,
  stopCustomer,
  wakeCustomer,
} from './archiver-client.js';
import {
  customerId,
  customerName,
  folderRoot,
  maxBatch,
  maxConcurrency,
  maxRate,
  pathTemplate,
  buildId,
  reason,
  since,
  backfillSince,
  timeZone,
  token,
  MAX_BATCH_CAP,
  MAX_CONCURRENCY_CAP,
  MAX_RATE_CAP,
  MIN_RATE_CAP,
  listenPort,
  waitTimeout,
} from './options.js';
import { connectCustomer } from './connect.js';
import { deploymentStatus, setCurrentVersion } from './deployments.js';
import { registerAuditTrail } from './audit.js';
import { registerManifests } from './manifests.js';
import { setDayManifests } from '../db/manifests.js';
import { registerRotateSecrets } from './rotate-secrets.js';
import { readStackFile, secretKeysEnv } from './stack-file.js';
import { formatStatusTable, NEEDS_ATTENTION } from './status-table.js';
import { verifyNow, withProgress } from './verification.js';
import { archiverDataConverter } from '../temporal/payload-codec.js';

/** Exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 3 a customer needs attention. */
const EXIT_NEEDS_ATTENTION = 3;

/**
 * The environment, over the stack `npm start` records, so the CLI finds the embedded stack by
 * itself; a Temporal config profile asked for by name (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE)
 * wins over the stack's Temporal address.
 */
function cliConfig(): ArchiverConfig {
  const stack = readStackFile();
  if (process.env.TEMPORAL_PROFILE !== undefined || process.env.TEMPORAL_CONFIG_FILE !== undefined) {
    delete stack.TEMPORAL_ADDRESS;
    delete stack.TEMPORAL_NAMESPACE;
  }
  return loadConfig({ ...stack, ...process.env });
}

/**
 * The keyring, for commands that read or write Dropbox tokens: from the environment, else the
 * development key that `npm start` records in its stack file.
 */
function cliKeyring(): Keyring {
  return loadSecretKeyring(secretKeysEnv());
}

async function withClient<T>(fn: (client: Client, config: ArchiverConfig) => Promise<T>): Promise<T> {
  const config = cliConfig();
  const client = await connectClient(config.temporal, archiverDataConverter(cliKeyring()));
  try {
    return await fn(client, config);
  } finally {
    await client.connection.close();
  }
}

async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const config = cliConfig();
  const url = requireDatabaseUrl(config);
  await migrate(url, config.databaseTimeouts);
  const pool = createPool(url, 2, undefined, config.databaseTimeouts);
  try {
    return await fn(dbFromPool(pool));
  } catch (err) {
    // Postgres going away mid-command is named like a failure to connect.
    throw postgresFailure(err, url, config.databaseTimeouts) ?? err;
  } finally {
    await pool.end();
  }
}

/**
 * A command whose usage errors come alone, in a line or two pointing at --help; the full help is
 * shown only when asked for.
 */
class ArchiverCommand extends Command {
  override createCommand(name?: string): Command {
    return new ArchiverCommand(name);
  }

  override help(context?: HelpContext | ((text: string) => string)): never {
    // Commander shows the whole help on stderr when a command that needs a subcommand gets none.
    if (typeof context === 'object' && context.error)
      this.error(`error: missing command; one of: ${this.commands.map((c) => c.name()).join(', ')}`);
    return super.help(context as HelpContext);
  }
}

/** After each usage error, the one line that says where the help is. */
function pointAtHelp(command: Command, path: string): void {
  command.showHelpAfterError(`(see: ${path} --help)`);
  for (const sub of command.commands) pointAtHelp(sub, `${path} ${sub.name()}`);
}

const program = new ArchiverCommand('archiver')
  .description('Operate Archiver: start customers, watch them, pause and resume them.')
  // Usage errors throw instead of exiting, so they get exit code 2 like every other bad input.
  .exitOverride()
  .addHelpText(
    'after',
    '\nConfiguration comes from the environment (see .env.example); without it, from the stack `npm start` runs.',
  );

const customers = program.command('customers').description('Manage the customer registry in Postgres.');
customers
  .command('add')
  .argument('<id>', 'customer id', customerId)
  .description(
    'Add a customer, or change only the given fields of an existing one (and reactivate it). New customers need --name; credentials of a customer that has some change with reconnect, which checks them first.',
  )
  .option('--name <name>', 'display name (required for a new customer)', customerName)
  .option(
    '--access-token <token>',
    'Dropbox access token (stored in Postgres, never sent to Temporal)',
    token('--access-token'),
  )
  .option('--refresh-token <token>', 'Dropbox refresh token', token('--refresh-token'))
  .option(
    '--folder-root <path>',
    'absolute Dropbox folder everything goes under (default for a new customer: /Archiver)',
    folderRoot,
  )
  .option(
    '--path-template <template>',
    `layout below the root; placeholders {root} {extension} {date} {kind} {time} {from} {to} {id} {ext} (default "${DEFAULT_PATH_TEMPLATE}")`,
    pathTemplate,
  )
  .option(
    '--backfill-since <time>',
    'archive only items that occurred since then (a date, UTC, or an ISO 8601 time); older ones are skipped (default: all history)',
    backfillSince,
  )
  .option('--sidecars', 'write a metadata .json next to each recording, voicemail and fax (the default)')
  .option('--no-sidecars', 'write no metadata sidecars')
  .option('--manifests', 'write a manifest.csv per day of archived items (the default for a new customer)')
  .option('--no-manifests', 'write no day manifests')
  .option(
    '--time-zone <name>',
    "IANA time zone whose days group the items: the path template's {date} and {time}, and the day manifests (default for a new customer: UTC); refused once anything is archived",
    timeZone,
  )
  .action(
    async (
      id: string,
      opts: {
        name?: string;
        accessToken?: string;
        refreshToken?: string;
        folderRoot?: string;
        pathTemplate?: string;
        backfillSince?: Date;
        sidecars?: boolean;
        manifests?: boolean;
        timeZone?: string;
      },
    ) => {
      const keyring = cliKeyring();
      let skipped: { skipped: number; requeued: number } | undefined;
      const existing = await withDb(async (db) => {
        const found = await getCustomer(db, id);
        const name = opts.name ?? found?.name;
        if (name === undefined) throw new OperatorError(`customer ${id} does not exist; give --name to add it`);
        // Unchecked credentials must not replace ones that may be working: reconnect checks them first.
        if (found && (opts.accessToken || opts.refreshToken) && (await hasDropboxCredentials(db, id)))
          throw new OperatorError(
            `customer ${id} already has Dropbox credentials; replace them with: archiver reconnect ${id} --refresh-token …, which checks them with Dropbox first`,
          );
        await db.transaction(async (tx) => {
          const { manifests, timeZone: zone, ...fields } = opts;
          await upsertCustomer(tx, keyring, { id, ...fields, name });
          if (manifests !== undefined) await setDayManifests(tx, id, manifests);
          // Another zone would move the day folders of what is archived; the transaction undoes the rest.
          if (zone !== undefined && (await setTimeZone(tx, id, zone)) === 'refused')
            throw new OperatorError(
              `customer ${id} already has items archived under time zone ${found?.timeZone ?? 'UTC'}; changing it to ${zone} would move their day folders and manifests, so it is refused (nothing was changed)`,
            );
          if (opts.backfillSince) skipped = await skipBeforeBackfill(tx, id);
        });
        return found;
      });
      console.log(
        existing ? `customer ${id} updated` : `customer ${id} added; start archiving with: archiver start ${id}`,
      );
      if (skipped && opts.backfillSince)
        console.log(
          `archiving items since ${opts.backfillSince.toISOString()}: ${skipped.skipped} older items skipped, ${skipped.requeued} skipped items re-queued`,
        );
    },
  );
customers
  .command('list')
  .description('List customers.')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const all = await withDb((db) => listCustomers(db));
    if (opts.json) console.log(JSON.stringify(all, null, 2));
    else for (const c of all) console.log(`${c.id}\t${c.status}\t${c.name}\t${c.folderRoot}\t${c.timeZone}`);
  });

program
  .command('start')
  .argument('[id]', 'customer id', customerId)
  .description(
    "Start a customer's archive workflow (or every active customer's with --all). Starting a running customer is not an error.",
  )
  .option('--all', 'start every active customer')
  .addOption(
    new Option(
      '--commit-mode <mode>',
      'single: one files/upload per item; sessions: upload sessions committed together with finish_batch_v2 (best for many small items)',
    )
      .choices(['single', 'sessions'])
      .default('single'),
  )
  .action(async (id: string | undefined, opts: { all?: boolean; commitMode: CommitMode }) => {
    if (!id === !opts.all) throw new OperatorError('give exactly one of <id> or --all');
    const targets = await withDb(async (db) => {
      if (opts.all) return listCustomers(db, { activeOnly: true });
      const customer = await getCustomer(db, id as string);
      if (!customer)
        throw new OperatorError(`unknown customer "${id}" (add it with: archiver customers add ${id} --name …)`);
      return [customer];
    });
    await withClient(async (client) => {
      await ensureSearchAttributes(client);
      for (const c of targets) {
        const result = await startCustomer(client, c.id, c.name, { commitMode: opts.commitMode });
        console.log(`${c.id}: ${result.started ? 'started' : 'already running'}`);
      }
    });
  });

program
  .command('status [id]')
  .description('Show customers: state, backlog, totals, pace, errors. Exits 3 if any needs attention.')
  .option('--json', 'print JSON')
  .action(async (id: string | undefined, opts: { json?: boolean }) => {
    const running = await withClient(async (client) => {
      if (id) return [await customerStatus(client, id)];
      const found: CustomerStatus[] = [];
      for await (const wf of client.workflow.list({
        query: `WorkflowType = 'archiveCustomer' AND ExecutionStatus = 'Running'`,
      })) {
        const customerId = customerIdOf(wf.workflowId);
        if (customerId) found.push(await customerStatus(client, customerId));
      }
      return found;
    });
    // The last verification of each customer, kept in Postgres.
    const verifications = cliConfig().databaseUrl
      ? await withDb((db) => lastFinishedVerifications(db))
      : new Map<string, VerificationRun>();
    const statuses = running.map((s) => ({ ...s, lastVerification: verifications.get(s.customerId) }));
    console.log(
      opts.json
        ? JSON.stringify(statuses, null, 2)
        : statuses.length
          ? formatStatusTable(statuses, Date.now(), verifications)
          : 'no customers are running',
    );
    if (statuses.some((s) => NEEDS_ATTENTION.has(s.state))) process.exitCode = EXIT_NEEDS_ATTENTION;
  });

program
  .command('verify')
  .argument('<id>', 'customer id', customerId)
  .description(
    "Verify a customer's archive against its Dropbox now, and wait for it, showing progress: list its folder, put archived items whose file is missing or altered back in the queue (archived again at the customer's pace, overwriting an altered file), and count files Archiver never wrote (left alone). `archiver start` schedules the same daily (schedule archiver-verify-<id>).",
  )
  .option('--json', 'print the counts as JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    await withDb((db) =>
      withClient(async (client) => {
        if (!(await getCustomer(db, id)))
          throw new OperatorError(`unknown customer "${id}" (add it with: archiver customers add ${id} --name …)`);
        const before = await latestVerificationRun(db, id);
        let shown = -1;
        const summary = await withProgress(verifyNow(client, id), async () => {
          const run = await latestVerificationRun(db, id);
          if (run === undefined || run.id === before?.id || run.listed === shown) return;
          shown = run.listed;
          console.error(`${id}: listed ${run.listed} files so far`);
        }).catch((err: unknown) => {
          // The workflow's failure wraps the activity's, which says why.
          let cause = err as Error;
          while (cause.cause instanceof Error) cause = cause.cause;
          throw new CustomerRefused(`verification of ${id} failed: ${cause.message}`);
        });
        if (opts.json) {
          console.log(JSON.stringify(summary, null, 2));
          return;
        }
        console.log(
          `${id}: listed ${summary.listed} files in ${summary.pages} pages: ${summary.expected} expected, ${summary.present} present, ${summary.missing} missing, ${summary.changed} changed, ${summary.requeued} re-queued, ${summary.unknown} unknown`,
        );
        if (summary.requeued > 0)
          console.log(
            (await isRunning(client, id))
              ? `re-queued items are archived again at the customer's pace (see: archiver status ${id})`
              : `re-queued items wait until the customer runs (archiver start ${id})`,
          );
        const run = await verificationRun(db, summary.runId);
        if (run && run.unknown > 0)
          console.log(
            `files Archiver never wrote, left alone: ${run.unknownSample.join(', ')}${run.unknown > run.unknownSample.length ? ', …' : ''}`,
          );
      }),
    );
  });

program
  .command('pause')
  .argument('<id>', 'customer id', customerId)
  .description('Stop starting uploads for a customer; uploads in flight finish.')
  .option('--reason <text>', 'why, shown in status', reason, 'paused by operator')
  .action(async (id: string, opts: { reason: string }) => {
    const result = await withClient((client) => pauseCustomer(client, id, opts.reason));
    console.log(
      result.outcome === 'paused'
        ? `${id}: paused; uploads in flight finish`
        : `${id}: already paused as ${result.state} (${result.reason ?? 'no reason given'}); nothing changed`,
    );
  });

program
  .command('resume')
  .argument('<id>', 'customer id', customerId)
  .description(
    'Resume a paused customer (also after fixing storage-full or needs-reauth, or to end quota-exceeded before the month does).',
  )
  .action(async (id: string) => {
    const result = await withClient((client) => resumeCustomer(client, id));
    if (result.outcome === 'refused')
      throw new CustomerRefused(`${id}: still ${result.state}; ${result.reason ?? 'the workflow refused to resume'}`);
    console.log(
      result.outcome === 'resumed' ? `${id}: resumed` : `${id}: not paused (${result.state}); nothing to resume`,
    );
  });

program
  .command('reconnect')
  .argument('<id>', 'customer id', customerId)
  .description(
    "Check a customer's new Dropbox credentials with Dropbox, store them only if they work, and resume a customer paused as needs-reauth. The customer's workflow must be running: it does the check.",
  )
  .option(
    '--refresh-token <token>',
    'the new Dropbox refresh token (from the OAuth flow, with offline access)',
    token('--refresh-token'),
  )
  .option('--access-token <token>', 'a Dropbox access token, for apps without refresh tokens', token('--access-token'))
  .action(async (id: string, opts: { refreshToken?: string; accessToken?: string }) => {
    if (!opts.refreshToken && !opts.accessToken) throw new OperatorError('give --refresh-token (or --access-token)');
    const keyring = cliKeyring();
    await withDb((db) =>
      withClient(async (client) => {
        if (!(await getCustomer(db, id))) throw new OperatorError(`unknown customer "${id}"`);
        // The workflow's activities hold the Dropbox app and adapter; the CLI checks nothing itself.
        if (!(await isRunning(client, id)))
          throw new OperatorError(
            `customer ${id} has no running archiver workflow to check the credentials with Dropbox; nothing was changed (start it with: archiver start ${id}, then reconnect)`,
          );
        const candidateId = await storeCandidateCredentials(db, keyring, id, opts);
        if (candidateId === undefined) throw new OperatorError(`unknown customer "${id}"`);
        try {
          const result = await reconnectCustomer(client, id, candidateId);
          console.log(`${id}: credentials work (Dropbox account ${result.accountId}); stored; state ${result.state}`);
        } catch (err) {
          await clearCandidateCredentials(db, id, candidateId);
          if (err instanceof OperatorError) throw err;
          // The update failed because Dropbox refuses the credentials; say so without the token.
          const cause = (err as { cause?: { cause?: Error; message?: string } }).cause;
          throw new CustomerRefused(
            `Dropbox refused the new credentials for ${id}, so the stored ones are unchanged: ${cause?.cause?.message ?? cause?.message ?? (err as Error).message}`,
          );
        }
      }),
    );
  });

program
  .command('connect')
  .argument('<id>', 'customer id', customerId)
  .description(
    "Connect a customer's Dropbox with OAuth 2 (PKCE, offline access): open the URL it prints in a browser signed in to that Dropbox, click Allow, and paste the code Dropbox shows (or, with --redirect-port, let the browser bring it back). The refresh token is checked with Dropbox and stored as reconnect stores it; a customer paused as needs-reauth resumes. Needs DROPBOX_APP_KEY and DROPBOX_APP_SECRET.",
  )
  .option(
    '--redirect-port <port>',
    "listen on 127.0.0.1:<port> for Dropbox's redirect instead of asking for the code (register http://127.0.0.1:<port>/oauth2/callback in the App Console)",
    listenPort,
  )
  .option(
    '--timeout <duration>',
    'how long to wait for Allow (and the pasted code), e.g. 90s or 5m',
    waitTimeout,
    300_000,
  )
  .action(async (id: string, opts: { redirectPort?: number; timeout: number }) => {
    const config = cliConfig();
    const result = await withDb((db) =>
      withClient((client) =>
        connectCustomer(
          {
            db,
            keyring: cliKeyring(),
            temporal: client,
            app: config.dropboxApp,
            apiBase: config.dropboxApiBase,
            requestTimeoutMs: config.dropboxTimeoutMs,
            input: process.stdin,
            say: (line) => console.log(line),
          },
          id,
          { redirectPort: opts.redirectPort, timeoutMs: opts.timeout },
        ),
      ),
    );
    console.log(
      `${id}: connected to the Dropbox of ${result.displayName} <${result.email}> (account ${result.accountId}); ${result.state === undefined ? `stored; start archiving with: archiver start ${id}` : `stored; state ${result.state}`}`,
    );
  });

program
  .command('set-limits')
  .argument('<id>', 'customer id', customerId)
  .description('Cap a customer\'s pace; "off" removes a cap. The adaptive pacing stays below the caps.')
  .option('--max-rate <r>', `uploads started per second, at most (${MIN_RATE_CAP} to ${MAX_RATE_CAP})`, maxRate)
  .option('--max-concurrency <w>', `uploads in flight at once, at most (1 to ${MAX_CONCURRENCY_CAP})`, maxConcurrency)
  .option('--max-batch <n>', `items leased per batch, at most (1 to ${MAX_BATCH_CAP})`, maxBatch)
  .action(
    async (
      id: string,
      opts: { maxRate?: number | 'off'; maxConcurrency?: number | 'off'; maxBatch?: number | 'off' },
    ) => {
      const limits = Object.fromEntries(
        Object.entries({
          maxRatePerSecond: opts.maxRate,
          maxConcurrency: opts.maxConcurrency,
          maxBatchSize: opts.maxBatch,
        })
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => [k, v === 'off' ? null : v]),
      );
      if (Object.keys(limits).length === 0)
        throw new OperatorError('give at least one of --max-rate, --max-concurrency, --max-batch');
      const caps = await withClient(async (client) => {
        try {
          return await setCustomerLimits(client, id, limits);
        } catch (err) {
          if (err instanceof OperatorError) throw err;
          throw new OperatorError(
            `limits refused: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`,
          );
        }
      });
      console.log(`${id}: limits now ${JSON.stringify(caps)}`);
    },
  );

program
  .command('retry-failed')
  .argument('<id>', 'customer id', customerId)
  .description('Put failed items back in the queue and wake the customer.')
  .addOption(
    new Option('--kind <kind>', 'only items of this kind').choices(['call_recording', 'voicemail', 'fax', 'sms']),
  )
  .option(
    '--since <time>',
    'only items that occurred at or after this time: a date (UTC midnight) or a time with Z or an offset, ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z',
    since,
  )
  .action(async (id: string, opts: { kind?: ItemKind; since?: Date }) => {
    const requeued = await withDb(async (db) => {
      if (!(await getCustomer(db, id))) throw new OperatorError(`unknown customer "${id}"`);
      return requeueFailed(db, id, opts);
    });
    const woken =
      requeued > 0 &&
      (await withClient(async (client) => {
        if (!(await isRunning(client, id))) return false;
        await wakeCustomer(client, id);
        return true;
      }));
    console.log(
      `${id}: ${requeued} failed items re-queued${requeued > 0 && !woken ? ` (the customer is not running: archiver start ${id})` : ''}`,
    );
  });

program
  .command('stop')
  .argument('<id>', 'customer id', customerId)
  .description(
    'The customer disconnected its storage: finish the batch in flight, end its workflow, and leave it out of start --all.',
  )
  .option('--reason <text>', 'why, kept in the workflow history', reason, 'storage disconnected')
  .action(async (id: string, opts: { reason: string }) => {
    const known = await withDb((db) => markDisconnected(db, id));
    if (!known) throw new OperatorError(`unknown customer "${id}"`);
    const wasRunning = await withClient(async (client) => {
      if (!(await isRunning(client, id))) return false;
      await stopCustomer(client, id, opts.reason);
      return true;
    });
    console.log(
      `${id}: ${wasRunning ? 'stopped' : 'was not running'}; marked disconnected (customers add ${id} … reactivates it)`,
    );
  });

const deploy = program
  .command('deploy')
  .description(
    'Roll out a new build with Worker Versioning: workers started with ARCHIVER_WORKER_VERSIONING=true join the deployment ARCHIVER_DEPLOYMENT_NAME (default archiver) as version ARCHIVER_BUILD_ID, and take work once that version is current.',
  );
deploy
  .command('set-current')
  .argument('<build-id>', 'the ARCHIVER_BUILD_ID of the new workers, e.g. 0.1.0-04e37fe', buildId)
  .description(
    'Make a version current: new customers start on it and every running customer moves to it at its next workflow task (customer workflows auto-upgrade). Its workers must be polling; stop the old ones afterwards.',
  )
  .action(async (id: string) => {
    const name = cliConfig().deploymentName;
    const result = await withClient((client) => setCurrentVersion(client, name, id));
    console.log(
      result.alreadyCurrent
        ? `${name}: ${id} is already the current version; nothing changed`
        : `${name}: ${id} is now the current version (was ${result.previousBuildId ?? 'none: unversioned workers'}); running customers move to it at their next workflow task`,
    );
  });
deploy
  .command('status')
  .description("List the deployment's versions, which one is current, and when each was created.")
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const name = cliConfig().deploymentName;
    const status = await withClient((client) => deploymentStatus(client, name));
    if (opts.json) {
      console.log(JSON.stringify(status, null, 2));
      return;
    }
    console.log(`deployment ${name}: current ${status.currentBuildId ?? 'none (unversioned workers take the work)'}`);
    if (status.rampingBuildId) console.log(`ramping ${status.rampingBuildId}`);
    console.log('BUILD ID\tSTATUS\tCREATED\tCURRENT SINCE');
    for (const v of status.versions)
      console.log(
        `${v.buildId}\t${v.status}\t${v.createdAt?.toISOString() ?? '-'}\t${v.currentSince?.toISOString() ?? '-'}`,
      );
  });

registerRotateSecrets(program, withDb, cliKeyring);
registerAuditTrail(program, withDb, () => Boolean(cliConfig().databaseUrl));
registerManifests(program, withDb, withClient, customerId);

pointAtHelp(program, 'archiver');

program.parseAsync().catch((err: unknown) => {
  // Commander has already printed its message (and help, for --help).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  // One line naming what failed, and for Postgres or Temporal the variable that points at it; never a stack.
  console.error(`archiver: ${failureMessage(err)}`);
  process.exit(err instanceof OperatorError ? EXIT_CONFIGURATION : exitCodeFor(err));
});
