/**
 * 5. Scale: many customers with empty backlogs on one worker. The worker is the real one
 * (`workers/main.ts`, as `npm run worker` runs it) in its own process, so its RSS and CPU are read
 * from /proc without the emulator, Postgres or the benchmark's clients. It polls the production
 * task queue in a namespace of its own and wakes customers with its own notifier (LISTEN/NOTIFY).
 */
import { loadSecretKeyring } from '../../workers/config.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCustomer } from '../../client/archiver-client.js';
import { connectClient } from '../../temporal/connection.js';
import { DEFAULT_MAX_CACHED_WORKFLOWS } from '../../workers/config.js';
import { TASK_QUEUE } from '../../workflows/names.js';
import { archivedCount, createCustomers, insertItems } from '../data.js';
import { mapLimit, sleep } from '../designs/slots.js';
import { percentile, round } from '../metrics.js';
import { SCALE_NAMESPACE } from '../stack.js';
import type { ResultRow, Scenario } from './types.js';
import { archiverDataConverter } from '../../temporal/payload-codec.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ---------------------------------------------------------------------------
// Processes, from /proc (Linux).

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function childrenOf(pid: number): number[] {
  return readdirSafe(`/proc/${pid}/task`).flatMap((tid) =>
    readSafe(`/proc/${pid}/task/${tid}/children`).split(' ').filter(Boolean).map(Number),
  );
}

/** The process and all its descendants. */
function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...childrenOf(out[i] as number));
  return out;
}

/**
 * CPU seconds (user + system) a process tree has used so far. Includes the children each process
 * has reaped (cutime, cstime), so the sum does not drop when a short-lived child, such as a
 * Postgres backend, exits.
 */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readSafe(`/proc/${pid}/stat`);
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0); // utime, stime, cutime, cstime
  }
  return ticks / CLK_TCK;
}

/** Sum of a /proc/<pid>/status field (VmRSS, VmHWM) in MiB. */
function statusMiB(pids: number[], field: 'VmRSS' | 'VmHWM'): number {
  let kb = 0;
  for (const pid of pids)
    kb += Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readSafe(`/proc/${pid}/status`))?.[1] ?? 0);
  return kb / 1024;
}

/** CPU use of groups of processes over a window, in percent of one core. */
function cpuMeter(groups: Record<string, () => number[]>): () => Record<string, number> {
  const t0 = process.hrtime.bigint();
  const start = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, cpuSeconds(pids())]));
  return () => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    return Object.fromEntries(
      Object.entries(groups).map(([k, pids]) => [k, ((cpuSeconds(pids()) - (start[k] ?? 0)) / wall) * 100]),
    );
  };
}

// ---------------------------------------------------------------------------
// The worker process.

interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  maxCachedWorkflows: number;
  stop(): Promise<void>;
}

/** `node --import tsx workers/main.ts` (what `npm run worker` runs, without npm's extra processes). */
async function startWorkerProcess(env: Record<string, string>, logFile: string): Promise<WorkerProcess> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ['TEMPORAL_API_KEY', 'DROPBOX_APP_KEY', 'DROPBOX_APP_SECRET']) delete childEnv[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const log = createWriteStream(logFile, { flags: 'a' });
  let output = '';
  let maxCachedWorkflows = Number(env.ARCHIVER_MAX_CACHED_WORKFLOWS ?? DEFAULT_MAX_CACHED_WORKFLOWS);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (output.length < 20_000) output += chunk.toString();
      const line = /^\{.*"worker started".*\}$/m.exec(output)?.[0];
      if (line) {
        maxCachedWorkflows = Number(
          (JSON.parse(line) as { maxCachedWorkflows?: number }).maxCachedWorkflows ?? maxCachedWorkflows,
        );
        resolve();
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (output.length < 20_000) output += chunk.toString();
    });
    void exited.then(() =>
      reject(
        new Error(
          `worker exited with ${String(child.exitCode ?? child.signalCode)} before starting:\n${output.slice(-2000)}`,
        ),
      ),
    );
    setTimeout(() => reject(new Error(`worker did not start within 120 s:\n${output.slice(-2000)}`)), 120_000).unref();
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', killOnExit);
    await new Promise<void>((resolve) => log.end(() => resolve()));
  };
  try {
    await started;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    child,
    pid: child.pid as number,
    get maxCachedWorkflows() {
      return maxCachedWorkflows;
    },
    stop,
  };
}

// ---------------------------------------------------------------------------

export const scale: Scenario = async (stack, { quick, designs, log }) => {
  if (!designs.includes('archiver')) return [];
  const customers = quick ? 300 : 10_000;
  const idleWindowS = quick ? 5 : 15;
  const tag = `scale-archiver${quick ? '-q' : ''}`;
  const ids = Array.from({ length: customers }, (_, i) => `${tag}-${i}`);
  const database = await stack.newDatabase(tag.replace(/-/g, '_'));
  await createCustomers(database.db, stack.emulator, ids, null);
  const client = await connectClient(
    { address: stack.temporal.address, namespace: SCALE_NAMESPACE },
    archiverDataConverter(loadSecretKeyring()),
  );
  let worker: WorkerProcess | undefined;
  try {
    worker = await startWorkerProcess(
      {
        TEMPORAL_ADDRESS: stack.temporal.address,
        TEMPORAL_NAMESPACE: SCALE_NAMESPACE,
        TEMPORAL_TLS: 'false',
        DATABASE_URL: database.url,
        DROPBOX_API_BASE: stack.emulator.url,
        ARCHIVER_METRICS_ADDRESS: 'off',
        ARCHIVER_LOG_LEVEL: 'WARN',
        ARCHIVER_SHUTDOWN_GRACE: '2s',
        // Set ARCHIVER_MAX_CACHED_WORKFLOWS for the benchmark to try another cache size.
        ...(process.env.ARCHIVER_MAX_CACHED_WORKFLOWS
          ? { ARCHIVER_MAX_CACHED_WORKFLOWS: process.env.ARCHIVER_MAX_CACHED_WORKFLOWS }
          : {}),
      },
      join(stack.dir, 'scale-worker.log'),
    );
    const workerPid = worker.pid;
    const workerTree = (): number[] => tree(workerPid);
    const startRssMB = statusMiB(workerTree(), 'VmRSS');
    log(
      `scale/archiver: worker pid ${workerPid} (maxCachedWorkflows ${worker.maxCachedWorkflows}, RSS ${startRssMB.toFixed(0)} MB); starting ${customers} customers`,
    );

    const t0 = Date.now();
    await mapLimit(ids, 64, (id) => startCustomer(client, id, `Bench ${id}`));
    const startAllSeconds = (Date.now() - t0) / 1000;
    // Settled: every workflow has leased nothing and shows itself idle.
    const query = `TaskQueue = '${TASK_QUEUE}' AND ArchiverState = 'idle'`;
    let idle = 0;
    const settleDeadline = Date.now() + (quick ? 120_000 : 600_000);
    while (Date.now() < settleDeadline) {
      idle = (await client.workflow.count(query)).count;
      if (idle >= customers) break;
      await sleep(1_000);
    }
    const settleSeconds = (Date.now() - t0) / 1000;
    log(
      `scale/archiver: started in ${startAllSeconds.toFixed(1)} s, ${idle}/${customers} idle after ${settleSeconds.toFixed(1)} s, worker RSS ${statusMiB(workerTree(), 'VmRSS').toFixed(0)} MB`,
    );
    await sleep(3_000);

    const benchChildren = (): number[] => childrenOf(process.pid);
    const postgresPids = (): number[] =>
      benchChildren()
        .filter((pid) => readSafe(`/proc/${pid}/comm`).trim() === 'postgres')
        .flatMap(tree);
    const meter = cpuMeter({
      worker: workerTree,
      server: () => (stack.temporal.pid ? tree(stack.temporal.pid) : []),
      postgres: postgresPids,
      bench: () => [process.pid], // the emulator, media server and clients; its children are counted above
    });
    await sleep(idleWindowS * 1000);
    const cpu = meter();
    const rss = statusMiB(workerTree(), 'VmRSS');
    const peakRss = statusMiB(workerTree(), 'VmHWM');
    log(
      `scale/archiver: idle ${idleWindowS} s: worker ${(cpu.worker ?? 0).toFixed(2)}% CPU, RSS ${rss.toFixed(0)} MB (peak ${peakRss.toFixed(0)} MB); Temporal ${(cpu.server ?? 0).toFixed(2)}%`,
    );

    // One item for an idle customer, woken by the worker's own notifier, until it is archived.
    const wakes: number[] = [];
    for (const id of [ids[0], ids[Math.floor(customers / 2)], ids[customers - 1]] as string[]) {
      const w = Date.now();
      await insertItems(database.db, stack.media.url, id, 1);
      while ((await archivedCount(database.db, [id])) < 1 && Date.now() - w < 60_000) await sleep(50);
      wakes.push((Date.now() - w) / 1000);
    }
    const row: ResultRow = {
      scenario: 'scale',
      design: 'archiver',
      customers,
      idleCustomers: idle,
      startAllSeconds: round(startAllSeconds, 1),
      settleSeconds: round(settleSeconds, 1),
      maxCachedWorkflows: worker.maxCachedWorkflows,
      workerRssMB: round(rss, 0),
      workerPeakRssMB: round(peakRss, 0),
      workerStartRssMB: round(startRssMB, 0),
      workerRssAfterWakesMB: round(statusMiB(workerTree(), 'VmRSS'), 0),
      idleCpuPercent: round(cpu.worker, 2),
      idleWindowSeconds: idleWindowS,
      serverIdleCpuPercent: round(cpu.server, 2),
      postgresIdleCpuPercent: round(cpu.postgres, 2),
      benchProcessIdleCpuPercent: round(cpu.bench, 2),
      wakeSeconds: round(
        percentile(
          [...wakes].sort((a, b) => a - b),
          50,
        ),
        2,
      ),
      wakeSamples: wakes.map((w) => round(w, 2)),
      note: 'the worker is workers/main.ts in its own process (RSS/CPU from /proc, incl. children); CPU in % of one core; serverIdleCpuPercent: the Temporal dev server',
    };
    return [row];
  } finally {
    await worker?.stop();
    await client.connection.close();
    await database.close();
  }
};
