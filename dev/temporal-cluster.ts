/**
 * The real Temporal Server (not the CLI's dev server), on Postgres: finds or builds the pinned
 * binaries, sets up the schemas with Temporal's SQL tool, writes the server's config into a data
 * directory, and runs it. The one place that knows where the server comes from.
 *
 * Binaries, in order: $TEMPORAL_SERVER_PATH (with `sql` beside it), then .tools/temporal-server/,
 * then `go install` of the pinned version into .tools/temporal-server/ (about 8 CPU-minutes the
 * first time), with the schema files copied from the module beside them.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { goInstall, requireGo } from './go-install.js';
import { freePort } from './ports.js';

/** Pinned Temporal Server; v1.32.1 and later need a newer Go than this machine's 1.26.8. */
export const TEMPORAL_SERVER_VERSION = 'v1.32.0';
const MODULE = 'go.temporal.io/server';
const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILD_TIMEOUT_MS = 45 * 60_000;
const SQL_TOOL_TIMEOUT_MS = 2 * 60_000;
const STARTUP_TIMEOUT_MS = 90_000;
const run = promisify(execFile);

export interface TemporalServerBinaries {
  server: string;
  sqlTool: string;
  /** schema/postgresql/v12 of the module: temporal/ and visibility/, each with versioned/. */
  schemaDir: string;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fsConstants.X_OK);
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

async function isDir(dir: string): Promise<boolean> {
  return fs.stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Finds the binaries, building them with `go install` if needed. @throws naming what is missing and what to do */
export async function resolveTemporalServer(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void; projectRoot?: string } = {},
): Promise<TemporalServerBinaries> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const tools = path.join(options.projectRoot ?? PROJECT_ROOT, '.tools', 'temporal-server');
  const configured = env.TEMPORAL_SERVER_PATH;
  if (configured) {
    const dir = path.dirname(path.resolve(configured));
    const found = {
      server: path.resolve(configured),
      sqlTool: path.join(dir, 'sql'),
      schemaDir: path.join(dir, 'schema', 'postgresql', 'v12'),
    };
    for (const [what, file] of [
      ['the server', found.server],
      ['the SQL tool', found.sqlTool],
    ] as const) {
      if (!(await isExecutable(file)))
        throw new Error(`TEMPORAL_SERVER_PATH: ${what} is not an executable file at ${file}`);
    }
    if (!(await isDir(found.schemaDir)))
      throw new Error(
        `TEMPORAL_SERVER_PATH: no schema directory at ${found.schemaDir} (copy the module's schema/ there)`,
      );
    return found;
  }
  const local = {
    server: path.join(tools, 'server'),
    sqlTool: path.join(tools, 'sql'),
    schemaDir: path.join(tools, 'schema', 'postgresql', 'v12'),
  };
  if ((await isExecutable(local.server)) && (await isExecutable(local.sqlTool)) && (await isDir(local.schemaDir)))
    return local;
  await buildInto(tools, env, log);
  return local;
}

async function buildInto(tools: string, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  await requireGo(
    env,
    `the Temporal Server ${TEMPORAL_SERVER_VERSION}`,
    'set TEMPORAL_SERVER_PATH to a server binary with the SQL tool `sql` and schema/ beside it',
  );
  for (const [what, pkg] of [
    ['the Temporal Server (about 8 CPU-minutes the first time)', 'cmd/server'],
    ['its SQL tool', 'cmd/tools/sql'],
  ] as const) {
    await goInstall(`${MODULE}/${pkg}@${TEMPORAL_SERVER_VERSION}`, {
      gobin: tools,
      what,
      env,
      log,
      timeoutMs: BUILD_TIMEOUT_MS,
    });
  }
  const { stdout } = await run('go', ['env', 'GOMODCACHE'], { env, timeout: 30_000 });
  const moduleSchema = path.join(stdout.trim(), `${MODULE}@${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12');
  await fs.cp(moduleSchema, path.join(tools, 'schema', 'postgresql', 'v12'), { recursive: true });
  // The module cache is read-only; the copy need not be.
  await run('chmod', ['-R', 'u+w', path.join(tools, 'schema')]);
  log(`built into ${tools}`);
}

export interface PostgresForTemporal {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface TemporalCluster {
  /** host:port of the frontend. */
  address: string;
  /** host:port of the server's own Prometheus endpoint. */
  metricsAddress: string;
  /** The server process now running (a new one after `restart`). */
  readonly child: ChildProcess;
  /**
   * Stops the server (SIGTERM, then SIGKILL after 15 s), leaves it down for `downForMs` (default 0),
   * and starts it again with the same config and ports, resolving once it serves `default` again.
   */
  restart(options?: { downForMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/** Creates (if missing) and migrates the `temporal` and `temporal_visibility` databases. */
async function setUpSchemas(
  bin: TemporalServerBinaries,
  pg: PostgresForTemporal,
  log: (l: string) => void,
): Promise<void> {
  const base = ['--plugin', 'postgres12', '--ep', pg.host, '-p', String(pg.port), '-u', pg.user, '--pw', pg.password];
  for (const [db, dir] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ] as const) {
    const sql = (...args: string[]) =>
      run(bin.sqlTool, [...base, '--db', db, ...args], { timeout: SQL_TOOL_TIMEOUT_MS }).catch((err: unknown) => {
        const output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
        throw Object.assign(
          new Error(
            `Temporal's SQL tool failed on ${db} (${args[0]}):\n${output.trim().split('\n').slice(-5).join('\n')}`,
          ),
          { output },
        );
      });
    await sql('create-database').catch((err: { output?: string }) => {
      if (!/already exists/.test(err.output ?? '')) throw err;
    });
    // setup-schema -v 0.0 creates the version table; update-schema applies every versioned step not applied yet.
    await sql('setup-schema', '-v', '0.0').catch((err: { output?: string }) => {
      if (!/already exists/.test(err.output ?? '')) throw err;
    });
    await sql('update-schema', '-d', path.join(bin.schemaDir, dir, 'versioned'));
    log(`schema ready: ${db}`);
  }
}

function serverConfig(pg: PostgresForTemporal, ports: Record<string, number>, dataDir: string): string {
  const store = (db: string, conns: number) => `      sql:
        pluginName: "postgres12"
        databaseName: "${db}"
        connectAddr: "${pg.host}:${pg.port}"
        connectProtocol: "tcp"
        user: "${pg.user}"
        password: "${pg.password}"
        maxConns: ${conns}
        maxIdleConns: ${conns}
        maxConnLifetime: "1h"`;
  const service = (name: string, extra = '') => `  ${name}:
    rpc:
      grpcPort: ${ports[`${name}Grpc`]}
      membershipPort: ${ports[`${name}Membership`]}
      bindOnLocalHost: true${extra}`;
  return `# Written by dev/temporal-cluster.ts for this data directory.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
${store('temporal', 20)}
    postgres-visibility:
${store('temporal_visibility', 4)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "127.0.0.1:${ports.metrics}"
services:
${service('frontend', `\n      httpPort: ${ports.frontendHttp}`)}
${service('history')}
${service('matching')}
${service('worker')}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${ports.frontendGrpc}"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: "${path.join(dataDir, 'dynamicconfig.yaml')}"
  pollInterval: "10s"
`;
}

/** The project's dynamic config: the same as deploy/temporal-dynamicconfig.yaml. */
const DYNAMIC_CONFIG = fileURLToPath(new URL('../deploy/temporal-dynamicconfig.yaml', import.meta.url));

/**
 * Runs the Temporal Server (frontend, history, matching and worker services in one process) on
 * `pg`, with its config, dynamic config and log in `dataDir`, and waits until the frontend answers
 * and the `default` namespace exists.
 */
export async function startTemporalCluster(options: {
  binaries: TemporalServerBinaries;
  postgres: PostgresForTemporal;
  dataDir: string;
  log?: (line: string) => void;
}): Promise<TemporalCluster> {
  const log = options.log ?? (() => undefined);
  const { binaries, postgres, dataDir } = options;
  await fs.mkdir(dataDir, { recursive: true });
  await setUpSchemas(binaries, postgres, log);
  const names = ['frontendGrpc', 'frontendMembership', 'frontendHttp', 'historyGrpc', 'historyMembership'];
  names.push('matchingGrpc', 'matchingMembership', 'workerGrpc', 'workerMembership', 'metrics');
  const ports: Record<string, number> = {};
  // Membership ports go into a smallint column of the cluster's database: below 32768.
  for (const name of names) ports[name] = await freePort(name.endsWith('Membership') ? { below: 32_768 } : {});
  const configFile = path.join(dataDir, 'server.yaml');
  await fs.writeFile(configFile, serverConfig(postgres, ports, dataDir), { mode: 0o600 });
  await fs.copyFile(DYNAMIC_CONFIG, path.join(dataDir, 'dynamicconfig.yaml'));
  const logFile = createWriteStream(path.join(dataDir, 'server.log'), { flags: 'a' });
  const address = `127.0.0.1:${ports.frontendGrpc}`;
  const launch = () => {
    const child = spawn(binaries.server, ['--config-file', configFile, '--allow-no-auth', 'start'], {
      cwd: dataDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(logFile, { end: false });
    child.stderr?.pipe(logFile, { end: false });
    return child;
  };
  const end = async (child: ChildProcess) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', () => r(true)));
    child.kill('SIGTERM');
    if (!(await Promise.race([exited, sleep(15_000).then(() => false)]))) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  let child = launch();
  const cluster: TemporalCluster = {
    address,
    metricsAddress: `127.0.0.1:${ports.metrics}`,
    get child() {
      return child;
    },
    async restart({ downForMs = 0 } = {}) {
      await end(child);
      await sleep(downForMs);
      log(`Temporal Server stopped for ${downForMs / 1000} s; starting it again on the same ports`);
      child = launch();
      await untilServing(address, child, path.join(dataDir, 'server.log'));
    },
    async stop() {
      await end(child);
      logFile.end();
    },
  };
  try {
    await untilServing(address, child, path.join(dataDir, 'server.log'));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  log(`Temporal Server ${TEMPORAL_SERVER_VERSION} on Postgres at ${address}`);
  return cluster;
}

/** Waits until the frontend answers and `default` exists (registering it, as a new cluster has none). */
async function untilServing(address: string, child: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        const service = connection.workflowService;
        try {
          await service.describeNamespace({ namespace: 'default' });
          return;
        } catch {
          await service.registerNamespace({
            namespace: 'default',
            workflowExecutionRetentionPeriod: msToTs('3 days'),
          });
        }
      } finally {
        await connection.close();
      }
    } catch (err) {
      last = err;
    }
    await sleep(1_000);
  }
  const tail = (await fs.readFile(logPath, 'utf8').catch(() => ''))
    .trim()
    .split('\n')
    .slice(-5)
    .map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line))
    .join('\n');
  throw new Error(
    child.exitCode !== null
      ? `the Temporal Server for ${address} exited with ${child.exitCode} before serving; its log ends:\n${tail}`
      : `the Temporal Server at ${address} did not serve the default namespace within ${STARTUP_TIMEOUT_MS / 1000} s: ` +
          `${String((last as Error | undefined)?.message ?? '')}\n${tail}`,
  );
}
