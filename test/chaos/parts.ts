/**
 * The real parts of a chaos run, each its own process: Postgres, the Temporal dev server, the
 * Dropbox emulator and the media server, each of which can be stopped and started again on the
 * same port and state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres, type RunningPostgres } from '../../dev/postgres.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../../dev/search-attributes.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../dev/temporal-server.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STOP_GRACE_MS = 10_000;

/** Children this process started that are not stopped yet; SIGKILLed if the orchestrator exits first. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a child so it cannot outlive the orchestrator, even when the orchestrator fails. */
export function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

export function logStream(dir: string, name: string): WriteStream {
  const stream = createWriteStream(join(dir, name), { flags: 'a' });
  stream.on('error', () => undefined);
  return stream;
}

/** Resolves when the child has exited, or false after `ms`. */
export function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM, then SIGKILL after the grace period. */
export async function stopChild(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL');
    await exited(child, 5_000);
  }
}

/** Runs a TypeScript entry point of this repo in its own Node process and waits for `ready` on stdout. */
async function spawnTsProcess(
  name: string,
  entry: string,
  args: string[],
  log: WriteStream,
  ready: RegExp,
  timeoutMs = 60_000,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let output = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      output += chunk.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      output += chunk.toString();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${output.slice(-2000)}`));
    });
  }).catch(async (err: unknown) => {
    await stopChild(child);
    throw err;
  });
  return { child, match };
}

/** Embedded Postgres on a fixed port and data directory, so a restart finds its data again. */
export class PostgresPart {
  private constructor(
    private server: RunningPostgres,
    private readonly dataDir: string,
    private readonly log: WriteStream,
  ) {}

  static async start(dir: string): Promise<PostgresPart> {
    const log = logStream(dir, 'postgres.log');
    const dataDir = join(dir, 'postgres');
    const server = await startEmbeddedPostgres({ dataDir, log: (line) => log.write(`${line}\n`) });
    return new PostgresPart(server, dataDir, log);
  }

  get port(): number {
    return this.server.port;
  }

  createDatabase(name: string): Promise<string> {
    return this.server.createDatabase(name);
  }

  /** A fast shutdown (every client is disconnected), `downMs` of nothing, then a start on the same port. */
  async restart(downMs: number): Promise<void> {
    this.log.write(`--- chaos: stopping postgres for ${downMs} ms\n`);
    await this.server.stop();
    await sleep(downMs);
    this.server = await startEmbeddedPostgres({
      dataDir: this.dataDir,
      port: this.port,
      log: (line) => this.log.write(`${line}\n`),
    });
  }

  async stop(): Promise<void> {
    await this.server.stop();
    this.log.end();
  }
}

/** `temporal server start-dev` on a fixed port with a SQLite file, so a restart keeps every workflow. */
export class TemporalPart {
  private constructor(
    private server: TemporalDevServer,
    private readonly port: number,
    private readonly dir: string,
  ) {}

  private static launch(dir: string, port?: number): Promise<TemporalDevServer> {
    return startTemporalDevServer({
      port,
      uiPort: false,
      dbFilename: join(dir, 'temporal.sqlite'),
      searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES,
      logFile: join(dir, 'temporal.log'),
    });
  }

  static async start(dir: string): Promise<TemporalPart> {
    const server = await TemporalPart.launch(dir);
    return new TemporalPart(server, Number(server.address.split(':')[1]), dir);
  }

  get address(): string {
    return this.server.address;
  }

  /** Stops the server (SIGTERM, or SIGKILL when `hard`), waits `downMs`, and starts it again. */
  async restart(downMs: number, hard: boolean): Promise<void> {
    if (hard && this.server.pid !== undefined) process.kill(this.server.pid, 'SIGKILL');
    await this.server.stop();
    await sleep(downMs);
    this.server = await TemporalPart.launch(this.dir, this.port);
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}

/** The emulator's JSON admin API under `/__admin/`, which works the same in process or in another one. */
export interface EmulatorAdmin {
  readonly url: string;
  admin<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

/** An EmulatorAdmin for the emulator at `url`. */
export function emulatorAdmin(url: string): EmulatorAdmin {
  return {
    url,
    async admin<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      const response = await fetch(`${url}/__admin/${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`emulator admin ${method} ${path} answered ${response.status}: ${text}`);
      return JSON.parse(text) as T;
    },
  };
}

/** The Dropbox emulator in its own process. */
export class EmulatorPart implements EmulatorAdmin {
  private readonly api: EmulatorAdmin;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.api = emulatorAdmin(url);
  }

  static async start(dir: string, args: string[]): Promise<EmulatorPart> {
    const { child, match } = await spawnTsProcess(
      'the Dropbox emulator',
      'packages/dropbox-emulator/src/main.ts',
      ['--port', '0', '--no-keep-content', ...args],
      logStream(dir, 'emulator.log'),
      /listening on (http:\/\/\S+)/,
    );
    return new EmulatorPart(child, match[1] as string);
  }

  admin<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return this.api.admin<T>(method, path, body);
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}

/** The media server (dev/media-server.ts) in its own process; it counts requests per faulty URL in memory. */
export class MediaPart {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(dir: string): Promise<MediaPart> {
    const { child, match } = await spawnTsProcess(
      'the media server',
      'test/chaos/media-main.ts',
      [],
      logStream(dir, 'media.log'),
      /listening on (http:\/\/\S+)/,
    );
    return new MediaPart(child, match[1] as string);
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}
