// A real Prometheus scrapes every worker of the cluster and evaluates the shipped alert rules
// (deploy/prometheus/archiver-alerts.yml, with each `for:` shortened to 2 s): a customer whose
// Dropbox token is revoked pages as needs-reauth, and a killed worker pages as down.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { statusQuery } from '../../workflows/messages.js';
import { workflowIdFor } from '../../workflows/names.js';
import { insertItems } from '../support/items.js';
import { startClusterStack, tokenOf, type ClusterStack } from '../support/cluster.js';
import {
  startPrometheus,
  type PrometheusAlert,
  type PrometheusTarget,
  type RunningPrometheus,
} from '../support/prometheus.js';
import { eventually } from '../support/stack.js';

const CUSTOMERS = ['p1', 'p2', 'p3'];
const ITEMS = 60;
const REVOKED = 'p2';

let stack: ClusterStack;
let prometheus: RunningPrometheus;
const metricsAddresses: string[] = [];

beforeAll(async () => {
  stack = await startClusterStack({
    customers: CUSTOMERS,
    rate: 20,
    workers: 3,
    workerEnv: async () => {
      const address = `127.0.0.1:${await freePort()}`;
      metricsAddresses.push(address);
      return { ARCHIVER_METRICS_ADDRESS: address };
    },
  });
  prometheus = await startPrometheus({ dataDir: join(stack.dir, 'prometheus'), workerTargets: metricsAddresses });
}, 30 * 60_000);

afterAll(async () => {
  await prometheus?.stop();
  await stack?.stop();
});

const alerts = async (name: string) =>
  (await prometheus.api<{ alerts: PrometheusAlert[] }>('/api/v1/alerts')).alerts.filter(
    (a) => a.labels.alertname === name,
  );
const scalar = async (query: string) => {
  const result = await prometheus.api<{ result: { value: [number, string] }[] }>(
    `/api/v1/query?query=${encodeURIComponent(query)}`,
  );
  return result.result.length === 1 ? Number(result.result[0]?.value[1]) : undefined;
};

describe('Prometheus on the cluster', () => {
  it(
    'scrapes every worker, whose counters add up to what the drain archived',
    async () => {
      await stack.seedAndStart(CUSTOMERS, ITEMS);
      await stack.untilArchived(CUSTOMERS, CUSTOMERS.length * ITEMS, 2 * 60_000);
      const targets = await eventually(
        async () => {
          const { activeTargets } = await prometheus.api<{ activeTargets: PrometheusTarget[] }>('/api/v1/targets');
          const workers = activeTargets.filter((t) => t.labels.job === 'archiver-worker');
          return workers.length === 3 && workers.every((t) => t.health === 'up') ? workers : undefined;
        },
        30_000,
        'all three worker targets up',
      );
      expect(targets.map((t) => new URL(t.scrapeUrl).host).sort()).toEqual([...metricsAddresses].sort());
      // Each worker counts what it archived; summed over the scraped workers, every item once.
      const archived = await eventually(
        async () => {
          const n = await scalar('sum(archiver_items_archived)');
          return n === CUSTOMERS.length * ITEMS ? n : undefined;
        },
        30_000,
        `sum(archiver_items_archived) to reach ${CUSTOMERS.length * ITEMS}`,
      );
      expect(archived).toBe(CUSTOMERS.length * ITEMS);
      expect(await alerts('ArchiverCustomerNeedsOperator')).toEqual([]);
    },
    4 * 60_000,
  );

  it(
    'fires ArchiverCustomerNeedsOperator for a customer whose token is revoked, and for no one else',
    async () => {
      stack.emulator.revokeTokens(REVOKED);
      await insertItems(stack.db, REVOKED, tokenOf(REVOKED), stack.media.url, 5, { bytes: 1_000 });
      const firing = await eventually(
        async () => {
          const found = (await alerts('ArchiverCustomerNeedsOperator')).filter((a) => a.state === 'firing');
          return found.length > 0 ? found : undefined;
        },
        90_000,
        'ArchiverCustomerNeedsOperator to fire',
      );
      expect(firing.map((a) => a.labels)).toEqual([
        expect.objectContaining({ customer_id: REVOKED, state: 'needs-reauth', severity: 'page' }),
      ]);
      // The workflow agrees: the customer is paused as needs-reauth, and so is the scraped gauge.
      const status = await stack.client.workflow.getHandle(workflowIdFor(REVOKED)).query(statusQuery);
      expect(status.state).toBe('needs-reauth');
      expect(await scalar(`max(archiver_state{customer_id="${REVOKED}", state="needs-reauth"})`)).toBe(1);
    },
    2 * 60_000,
  );

  it(
    'fires ArchiverWorkerDown for a killed worker, naming its endpoint',
    async () => {
      const victim = stack.workers[0];
      const address = metricsAddresses[0];
      victim?.child.kill('SIGKILL');
      await victim?.exited;
      const firing = await eventually(
        async () => {
          const found = (await alerts('ArchiverWorkerDown')).filter((a) => a.state === 'firing');
          return found.length > 0 ? found : undefined;
        },
        60_000,
        'ArchiverWorkerDown to fire',
      );
      expect(firing.map((a) => a.labels.instance)).toEqual([address]);
    },
    2 * 60_000,
  );
});
