/**
 * The standalone Temporal Web UI (ui-server, the UI assets built in) for `npm run cluster`: finds
 * or builds the pinned binary, writes its config into a data directory and runs it against a
 * cluster's frontend. The one place that knows where the UI comes from.
 *
 * Binary, in order: $TEMPORAL_UI_PATH, then .tools/temporal-ui/server, then `go install` of the
 * pinned version into .tools/temporal-ui/ (about 20 CPU-seconds).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { goInstall, requireGo } from './go-install.js';
import { freePort } from './ports.js';

/** Pinned Web UI server; docker-compose.yml runs the same version as temporalio/ui. */
export const TEMPORAL_UI_VERSION = 'v2.54.1';
const MODULE = 'github.com/temporalio/ui-server/v2/cmd/server';
const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILD_TIMEOUT_MS = 15 * 60_000;
const STARTUP_TIMEOUT_MS = 30_000;

async function isExecutable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fsConstants.X_OK);
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Finds the UI server binary, building it with `go install` if needed. @throws naming what is missing and what to do */
export async function resolveTemporalUi(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void; projectRoot?: string } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const configured = env.TEMPORAL_UI_PATH;
  if (configured) {
    const file = path.resolve(configured);
    if (!(await isExecutable(file))) throw new Error(`TEMPORAL_UI_PATH: not an executable file at ${file}`);
    return file;
  }
  const tools = path.join(options.projectRoot ?? PROJECT_ROOT, '.tools', 'temporal-ui');
  const local = path.join(tools, 'server');
  if (await isExecutable(local)) return local;
  await requireGo(env, `the Temporal Web UI ${TEMPORAL_UI_VERSION}`, 'set TEMPORAL_UI_PATH to a ui-server binary');
  await goInstall(`${MODULE}@${TEMPORAL_UI_VERSION}`, {
    gobin: tools,
    what: 'the Temporal Web UI (about 20 CPU-seconds)',
    env,
    log,
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  log(`built into ${tools}`);
  return local;
}

export interface TemporalUi {
  /** http://127.0.0.1:<port> */
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

function uiConfig(temporalAddress: string, port: number, namespace: string): string {
  return `# Written by dev/temporal-ui.ts for this data directory.
temporalGrpcAddress: "${temporalAddress}"
host: "127.0.0.1"
port: ${port}
publicPath: ""
enableUi: true
defaultNamespace: "${namespace}"
refreshInterval: 1m
disableNewsFetch: true
cors:
  # Plain http on loopback: the CSRF cookie cannot be marked Secure.
  cookieInsecure: true
  allowOrigins: []
auth:
  enabled: false
`;
}

/**
 * Runs the Web UI on a free port of 127.0.0.1 against the frontend at `temporalAddress`, with its
 * config and log in `dataDir`, and waits until it answers /healthz.
 */
export async function startTemporalUi(options: {
  binary: string;
  temporalAddress: string;
  dataDir: string;
  namespace?: string;
}): Promise<TemporalUi> {
  const { binary, temporalAddress, dataDir } = options;
  await fs.mkdir(dataDir, { recursive: true });
  const port = await freePort();
  await fs.writeFile(path.join(dataDir, 'base.yaml'), uiConfig(temporalAddress, port, options.namespace ?? 'default'));
  const logPath = path.join(dataDir, 'ui.log');
  const logFile = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(binary, ['--root', dataDir, '--config', '.', '--env', 'archiver', 'start'], {
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(logFile);
  child.stderr?.pipe(logFile);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const ended = await Promise.race([
        new Promise((r) => child.once('exit', () => r(true))),
        sleep(10_000).then(() => false),
      ]);
      if (!ended) child.kill('SIGKILL');
    }
    logFile.end();
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (child.exitCode === null && Date.now() < deadline) {
    const healthy = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (res) => res.ok,
      () => false,
    );
    if (healthy) return { url, child, stop };
    await sleep(250);
  }
  await stop();
  const tail = (await fs.readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
  throw new Error(
    `the Temporal Web UI did not answer ${url}/healthz within ${STARTUP_TIMEOUT_MS / 1000} s` +
      `${child.exitCode !== null ? ` (it exited with ${child.exitCode})` : ''}:\n${tail}`,
  );
}
