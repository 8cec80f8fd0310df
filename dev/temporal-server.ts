/**
 * Runs `temporal server start-dev` as a child process of this Node process.
 *
 * We start it ourselves instead of using @temporalio/testing's
 * TestWorkflowEnvironment.createLocal(), whose startup deadline is a fixed
 * 5 s and flakes on small CI machines. Readiness is checked over gRPC with
 * @temporalio/client for up to `startupTimeoutMs` (60 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants, createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { freePort } from './ports.js';
import { resolveTemporalCli } from './temporal-cli.js';

export type DevServerSearchAttributeType = 'Keyword' | 'Int' | 'Text' | 'Bool' | 'Double' | 'Datetime';

export interface TemporalDevServerOptions {
  /** Path of the `temporal` binary. Default: `await resolveTemporalCli()`. */
  cliPath?: string;
  /** SQLite file so state survives restarts (parent dirs are created). Unset = in-memory. */
  dbFilename?: string;
  /** Frontend gRPC port. Default: a free port on 127.0.0.1. */
  port?: number;
  /** `false` = no Web UI (`--headless`); a number = that port; 0/undefined = a free port. */
  uiPort?: number | false;
  /** The codec server the Web UI sends payloads to for display (`--ui-codec-endpoint`). */
  uiCodecEndpoint?: string;
  /** Namespace to create and wait for. Default 'default' (always created by the server). */
  namespace?: string;
  /** More namespaces to create at launch, e.g. to isolate test files that share the task queue name. */
  extraNamespaces?: string[];
  /**
   * Custom search attributes for every namespace created at launch (`--search-attribute NAME=Type`).
   * The server ignores them when `dbFilename` already exists; ensureSearchAttributes (temporal/search-attributes.ts)
   * registers them on an existing database.
   */
  searchAttributes?: Record<string, DevServerSearchAttributeType>;
  /**
   * Extra `--dynamic-config-value key=<JSON value>`; overrides our defaults, e.g.
   * `{ 'matching.enableFairness': false }` for FIFO task dispatch.
   */
  dynamicConfig?: Record<string, string | number | boolean>;
  /** Append the server's stdout/stderr to this file (parent dirs are created). Default: discarded. */
  logFile?: string;
  /** How long to wait for the server to answer gRPC. Default 60 000 ms. */
  startupTimeoutMs?: number;
}

export interface TemporalDevServer {
  /** `127.0.0.1:PORT`, for Connection.connect / NativeConnection.connect. */
  address: string;
  namespace: string;
  /** `http://127.0.0.1:UIPORT`, or undefined when headless. */
  uiUrl: string | undefined;
  /** The server's process id (e.g. to read its CPU and memory from /proc). */
  pid: number | undefined;
  /** SIGTERM, wait up to 10 s, then SIGKILL. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_STARTUP_TIMEOUT_MS = 60_000;
const PROBE_INTERVAL_MS = 200;
const PROBE_TIMEOUT_MS = 2_000;
const STOP_GRACE_MS = 10_000;
const TAIL_LINES = 50;

/**
 * Dynamic config we always pass. Workflow Update has been on by default in
 * the server for a while (CLI 1.9.1 bundles server 1.32), so the first two are
 * belt and braces for older CLIs given via TEMPORAL_CLI_PATH; the version check
 * would only try to phone home.
 */
const DEFAULT_DYNAMIC_CONFIG: Record<string, string | number | boolean> = {
  'frontend.enableUpdateWorkflowExecution': true,
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted': true,
  'frontend.enableServerVersionCheck': false,
  // Archiver's activities carry fairnessKey = customer id; without this (server default: off) the
  // server dispatches a backlogged task queue FIFO and a huge customer's uploads delay everyone's.
  'matching.enableFairness': true,
};

// ---------------------------------------------------------------------------
// Make sure children never outlive us.

const liveChildren = new Set<ChildProcess>();
let exitHooksInstalled = false;

function signalChildren(signal: NodeJS.Signals): void {
  for (const child of liveChildren) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // Normal exit (including process.exit()): only synchronous work is possible here.
  process.on('exit', () => signalChildren('SIGTERM'));
  // Signals would otherwise terminate Node without an 'exit' event. Stop the
  // children, then, if nobody else handles the signal, restore the default
  // behaviour (terminate) by re-raising it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      signalChildren('SIGTERM');
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

/**
 * On Linux, `setpriv --pdeathsig SIGTERM` (util-linux) makes the kernel send
 * SIGTERM to the server if this process dies without running 'exit' handlers
 * (SIGKILL, crash). Used when available; harmless to skip.
 */
async function findSetpriv(): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'setpriv');
    try {
      await fs.access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

function describeExit(e: ExitInfo): string {
  if (e.error) return `failed to start: ${e.error.message}`;
  if (e.signal) return `was killed by ${e.signal}`;
  return `exited with code ${e.code}`;
}

function buildArgs(o: TemporalDevServerOptions, port: number, uiPort: number | undefined, namespace: string): string[] {
  const args = ['server', 'start-dev', '--ip', HOST, '--port', String(port), '--log-level', 'warn'];
  if (uiPort === undefined) {
    args.push('--headless');
  } else {
    // --ui-disable-news-fetch: no outbound request from the UI (we are often offline).
    args.push('--ui-ip', HOST, '--ui-port', String(uiPort), '--ui-disable-news-fetch');
    if (o.uiCodecEndpoint) args.push('--ui-codec-endpoint', o.uiCodecEndpoint);
  }
  for (const ns of new Set([namespace, ...(o.extraNamespaces ?? [])])) {
    if (ns !== 'default') args.push('--namespace', ns);
  }
  if (o.dbFilename !== undefined) args.push('--db-filename', path.resolve(o.dbFilename));
  for (const [name, type] of Object.entries(o.searchAttributes ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`Invalid search attribute name ${JSON.stringify(name)}`);
    }
    args.push('--search-attribute', `${name}=${type}`);
  }
  const dyn = { ...DEFAULT_DYNAMIC_CONFIG, ...(o.dynamicConfig ?? {}) };
  for (const [key, value] of Object.entries(dyn)) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  return args;
}

async function probe(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const connection = Connection.lazy({ address, connectTimeout: timeoutMs });
  try {
    await connection.ensureConnected(); // includes getSystemInfo
    await connection.withDeadline(Date.now() + timeoutMs, () =>
      connection.workflowService.describeNamespace({ namespace }),
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Starts `temporal server start-dev` and resolves once it answers gRPC for `namespace`. */
export async function startTemporalDevServer(options: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const cliPath = options.cliPath ?? (await resolveTemporalCli());
  const port = options.port ?? (await freePort());
  const uiPort = options.uiPort === false ? undefined : options.uiPort || (await freePort());
  const namespace = options.namespace ?? 'default';
  const startupTimeoutMs = options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
  const address = `${HOST}:${port}`;
  const args = buildArgs(options, port, uiPort, namespace);

  if (options.dbFilename !== undefined) {
    await fs.mkdir(path.dirname(path.resolve(options.dbFilename)), { recursive: true });
  }
  let logStream: WriteStream | undefined;
  if (options.logFile !== undefined) {
    await fs.mkdir(path.dirname(path.resolve(options.logFile)), { recursive: true });
    logStream = createWriteStream(options.logFile, { flags: 'a' });
    logStream.on('error', () => undefined); // never crash the parent over a log file
    logStream.write(`--- ${new Date().toISOString()} ${cliPath} ${args.join(' ')}\n`);
  }

  const setpriv = await findSetpriv();
  const [command, commandArgs] = setpriv
    ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', cliPath, ...args]]
    : [cliPath, args];

  installExitHooks();
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);

  // Keep the last lines of output for error messages.
  const tail: string[] = [];
  const capture = (stream: NodeJS.ReadableStream): void => {
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      if (logStream && !logStream.writableEnded) logStream.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
    });
    stream.on('end', () => {
      if (partial) tail.push(partial);
      partial = '';
      if (tail.length > TAIL_LINES) tail.shift();
    });
  };
  capture(child.stdout);
  capture(child.stderr);
  const outputTail = (): string => (tail.length ? tail.join('\n') : '(no output)');

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo ??= { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (error) => {
      // 'error' without 'exit' happens when spawn itself fails.
      exitInfo ??= { code: null, signal: null, error };
      resolve(exitInfo);
    });
  }).finally(() => {
    liveChildren.delete(child);
  });
  // 'close' comes after 'exit', once the output pipes are drained.
  const outputClosed = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo === undefined && child.pid !== undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      await exited;
      // Let the pipes drain into the log before closing it.
      await Promise.race([outputClosed, sleep(1_000)]);
      await new Promise<void>((resolve) => {
        if (!logStream) return resolve();
        logStream.end(() => resolve());
      });
    })();
    return stopping;
  };

  const started = Date.now();
  const deadline = started + startupTimeoutMs;
  let lastError: unknown;
  for (;;) {
    if (exitInfo) {
      await stop();
      throw new Error(
        `temporal server start-dev ${describeExit(exitInfo)} before it became ready on ${address}.\n` +
          `Command: ${cliPath} ${args.join(' ')}\n--- last server output ---\n${outputTail()}`,
      );
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      await stop();
      throw new Error(
        `temporal server start-dev did not become ready on ${address} within ${startupTimeoutMs} ms ` +
          `(last probe error: ${(lastError as Error | undefined)?.message ?? 'none'}).\n` +
          `Command: ${cliPath} ${args.join(' ')}\n--- last server output ---\n${outputTail()}`,
      );
    }
    try {
      await Promise.race([probe(address, namespace, Math.min(PROBE_TIMEOUT_MS, remaining)), exited]);
      if (!exitInfo) break;
    } catch (err) {
      lastError = err;
      await Promise.race([sleep(PROBE_INTERVAL_MS), exited]);
    }
  }

  return {
    address,
    namespace,
    uiUrl: uiPort === undefined ? undefined : `http://${HOST}:${uiPort}`,
    pid: child.pid,
    stop,
  };
}
