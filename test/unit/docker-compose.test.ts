import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { TEMPORAL_SERVER_VERSION } from '../../dev/temporal-cluster.js';
import { TEMPORAL_UI_VERSION } from '../../dev/temporal-ui.js';
import { loadConfig } from '../../workers/config.js';
import { searchAttributes } from '../../workflows/names.js';

interface Service {
  image?: string;
  build?: string;
  container_name?: string;
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  entrypoint?: string[];
  command?: string[];
  stop_grace_period?: string;
  volumes?: string[];
}

/** There is no Docker engine here, so the compose file is checked by parsing it. */
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };
const service = (name: string): Service => compose.services[name] ?? {};
/** What a one-shot service runs: its `sh -c` script, with compose's `$$` unescaped. */
const script = (name: string) => (service(name).command ?? []).join('\n').replaceAll('$$', '$');
/** The host file mounted at `target` inside the service. */
const mountOf = (name: string, target: string) =>
  service(name)
    .volumes?.find((v) => v.split(':')[1] === target)
    ?.split(':')[0];
const condition = (name: string, dependency: string) =>
  (service(name).depends_on as Record<string, { condition: string }> | undefined)?.[dependency]?.condition;

describe('docker-compose.yml', () => {
  it('runs Postgres, schema and namespace setup, Temporal on Postgres, the Web UI, Prometheus and workers', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'codec-server',
        'postgres',
        'prometheus',
        'temporal',
        'temporal-schema',
        'temporal-setup',
        'temporal-ui',
        'worker',
      ].sort(),
    );
    expect(service('temporal').environment?.DB).toBe('postgres12');
    expect(service('worker').build).toBe('.');
  });

  it('points the Web UI at the codec server, which allows only that UI and needs the keys and a token', () => {
    const codec = service('codec-server');
    expect(codec.build).toBe('.');
    expect(codec.environment?.ARCHIVER_CODEC_ORIGINS).toBe('http://127.0.0.1:8080,http://localhost:8080');
    expect(codec.environment?.ARCHIVER_SECRET_KEYS).toMatch(/^\$\{ARCHIVER_SECRET_KEYS:\?/);
    expect(codec.environment?.ARCHIVER_CODEC_TOKEN).toMatch(/^\$\{ARCHIVER_CODEC_TOKEN:\?/);
    expect(codec.ports).toEqual(['127.0.0.1:8888:8888']);
    expect(service('temporal-ui').environment?.TEMPORAL_CODEC_ENDPOINT).toMatch(
      /^http:\/\/127\.0\.0\.1:8888\/\$\{ARCHIVER_CODEC_TOKEN:\?/,
    );
  });

  it('pins the Temporal Server, admin tools and Web UI that npm run cluster and the cluster tests run', () => {
    const server = TEMPORAL_SERVER_VERSION.replace(/^v/, '');
    const ui = TEMPORAL_UI_VERSION.replace(/^v/, '');
    expect(service('temporal').image).toBe(`temporalio/server:${server}`);
    expect(service('temporal-schema').image).toBe(`temporalio/admin-tools:${server}`);
    expect(service('temporal-setup').image).toBe(`temporalio/admin-tools:${server}`);
    expect(service('temporal-ui').image).toBe(`temporalio/ui:${ui}`);
    for (const s of Object.values(compose.services)) expect(s.image ?? '').not.toMatch(/auto-setup/);
  });

  it('sets up both schemas with the SQL tool before the server starts, instead of auto-setup', () => {
    const sql = script('temporal-schema');
    expect(service('temporal-schema').environment?.SQL_PLUGIN).toBe('postgres12');
    for (const step of ['create-database', 'setup-schema -v 0.0', 'update-schema -d'])
      expect(sql).toContain(`temporal-sql-tool --db "$name" ${step}`);
    expect(sql).toContain('temporal:temporal temporal_visibility:visibility');
    expect(sql).toContain('/etc/temporal/schema/postgresql/v12/$dir/versioned');
    expect(condition('temporal', 'temporal-schema')).toBe('service_completed_successfully');
  });

  it("registers the namespace and every one of Archiver's search attributes before any worker starts", () => {
    const setup = script('temporal-setup');
    expect(setup).toContain('temporal operator namespace create --namespace default');
    const types: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int' };
    const listed = /for attr in ([^;]+);/.exec(setup)?.[1]?.trim().split(/\s+/) ?? [];
    expect(listed.sort()).toEqual(
      Object.values(searchAttributes)
        .map((k) => `${k.name}:${types[k.type]}`)
        .sort(),
    );
    expect(condition('worker', 'temporal-setup')).toBe('service_completed_successfully');
  });

  it('lets workers scale with --scale worker=N, and Prometheus scrape every replica with the alert rules', () => {
    const worker = service('worker');
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    const metrics = loadConfig(worker.environment ?? {}).metricsAddress ?? '';
    expect(metrics).toMatch(/^0\.0\.0\.0:\d+$/);
    const config = parse(read(mountOf('prometheus', '/etc/prometheus/prometheus.yml') ?? '')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    // The alert rules name job "archiver-worker"; its targets follow the replicas through Docker's DNS.
    const job = config.scrape_configs.find((j) => j.job_name === 'archiver-worker');
    expect(job?.dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['worker'], port: Number(metrics.split(':')[1]) }),
    ]);
    expect(read('deploy/prometheus/archiver-alerts.yml')).toContain('job="archiver-worker"');
    for (const rules of config.rule_files)
      expect(mountOf('prometheus', `/etc/prometheus/${rules}`)).toBe('./deploy/prometheus/archiver-alerts.yml');
  });

  it("gives the worker a configuration Archiver accepts, pointing at the stack's own services", () => {
    const config = loadConfig(service('worker').environment ?? {});
    expect(config.temporal.address).toBe('temporal:7233');
    expect(new URL(config.databaseUrl ?? '').hostname).toBe('postgres');
    // Without DROPBOX_API_BASE the worker talks to the real Dropbox.
    expect(config.dropboxApiBase).toBeUndefined();
  });

  it('lets in-flight uploads finish on shutdown: Docker waits longer than the worker grace time', () => {
    const grace = loadConfig(service('worker').environment ?? {}).shutdownGraceMs;
    expect(Number.parseInt(service('worker').stop_grace_period ?? '0', 10) * 1000).toBeGreaterThan(grace);
  });

  it("turns on Temporal's task-queue fairness, which Archiver's fairness keys rely on", () => {
    const path = service('temporal').environment?.DYNAMIC_CONFIG_FILE_PATH ?? '';
    const file = parse(read(mountOf('temporal', path) ?? '')) as Record<string, Array<{ value: unknown }>>;
    expect(file['matching.enableFairness']).toEqual([{ value: true }]);
  });
});
