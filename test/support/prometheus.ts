// A real Prometheus (Debian's `prometheus`, which .ci/run installs) for the cluster tests: it
// scrapes the given worker endpoints under job "archiver-worker" and evaluates the alert rules of
// deploy/prometheus/, with short intervals so a test sees alerts in seconds.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { freePort } from '../../dev/ports.js';

const ALERT_RULES = fileURLToPath(new URL('../../deploy/prometheus/archiver-alerts.yml', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;

export interface RunningPrometheus {
  url: string;
  child: ChildProcess;
  /** GET of the HTTP API (`/api/v1/...`), returning its `data`. @throws when it answers an error */
  api<T>(pathAndQuery: string): Promise<T>;
  stop(): Promise<void>;
}

export interface PrometheusAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

export interface PrometheusTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
}

/** The `prometheus` binary: $PROMETHEUS_PATH, else PATH. @throws saying how to install it */
function prometheusBinary(): string {
  if (process.env.PROMETHEUS_PATH) return process.env.PROMETHEUS_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('prometheus is not installed: apt-get install -y prometheus (or set PROMETHEUS_PATH)');
  }
}

/**
 * The project's alert rules with every `for:` shortened to `pendingFor`, so a test need not wait
 * minutes; the expressions, labels and annotations stay exactly as shipped.
 */
async function rulesWithShortFor(pendingFor: string): Promise<string> {
  const rules = parse(await fs.readFile(ALERT_RULES, 'utf8')) as { groups: { rules: { for?: string }[] }[] };
  for (const group of rules.groups) for (const rule of group.rules) if (rule.for) rule.for = pendingFor;
  return stringify(rules);
}

/** Starts Prometheus on a free port of 127.0.0.1 scraping `workerTargets` (host:port) every second. */
export async function startPrometheus(options: {
  dataDir: string;
  workerTargets: string[];
  /** Replaces every alert rule's `for:`. @default '2s' */
  pendingFor?: string;
}): Promise<RunningPrometheus> {
  const { dataDir } = options;
  await fs.mkdir(dataDir, { recursive: true });
  await fs.writeFile(path.join(dataDir, 'archiver-alerts.yml'), await rulesWithShortFor(options.pendingFor ?? '2s'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: ['archiver-alerts.yml'],
    scrape_configs: [{ job_name: 'archiver-worker', static_configs: [{ targets: options.workerTargets }] }],
  };
  await fs.writeFile(path.join(dataDir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logPath = path.join(dataDir, 'prometheus.log');
  const logFile = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(
    prometheusBinary(),
    [
      `--config.file=${path.join(dataDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dataDir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(logFile);
  child.stderr?.pipe(logFile);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]))) child.kill('SIGKILL');
    }
    logFile.end();
  };
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`${url}${pathAndQuery}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (child.exitCode === null && Date.now() < deadline) {
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) }).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) return { url, child, api, stop };
    await sleep(250);
  }
  await stop();
  const tail = (await fs.readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
  throw new Error(`Prometheus did not become ready at ${url} within ${STARTUP_TIMEOUT_MS / 1000} s:\n${tail}`);
}
