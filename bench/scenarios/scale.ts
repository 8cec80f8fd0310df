/** 5. Scale: many customers with empty backlogs on one in-process worker. */
import { readdirSync, readFileSync } from 'node:fs';
import { ItemsNotifier } from '../../client/notifier.js';
import { archivedCount, createCustomers, insertItems } from '../data.js';
import { startDesign } from '../designs/index.js';
import { mapLimit, sleep } from '../designs/slots.js';
import { percentile, round } from '../metrics.js';
import type { ResultRow, Scenario } from './types.js';

/** CPU ticks (utime+stime) of this process's direct children: the Temporal dev server and the postmaster. */
function childTicks(): number {
  let total = 0;
  for (const tid of readdirSafe(`/proc/${process.pid}/task`)) {
    for (const pid of readSafe(`/proc/${process.pid}/task/${tid}/children`).split(' ').filter(Boolean)) {
      const stat = readSafe(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    }
  }
  return total;
}
function readSafe(path: string): string { try { return readFileSync(path, 'utf8'); } catch { return ''; } }
function readdirSafe(path: string): string[] { try { return readdirSync(path); } catch { return []; } }

export const scale: Scenario = async (stack, { quick, designs, log }) => {
  if (!designs.includes('archiver')) return [];
  const customers = quick ? 300 : 10_000;
  const idleWindowS = quick ? 5 : 15;
  const tag = `scale-archiver${quick ? '-q' : ''}`;
  const ids = Array.from({ length: customers }, (_, i) => `${tag}-${i}`);
  const database = await stack.newDatabase(tag.replace(/-/g, '_'));
  await createCustomers(database.db, stack.emulator, ids, null);
  const design = await startDesign('archiver', { stack, db: database.db, tag });
  const notifier = new ItemsNotifier({ databaseUrl: database.url, client: stack.client });
  try {
    log(`scale/archiver: starting ${customers} customers`);
    const t0 = Date.now();
    await mapLimit(ids, 64, (id) => design.add([id]));
    const startAllSeconds = (Date.now() - t0) / 1000;
    // Settled: every workflow has leased nothing and shows itself idle.
    const query = `TaskQueue = 'bench-${tag}' AND ArchiverState = 'idle'`;
    let idle = 0;
    const settleDeadline = Date.now() + (quick ? 120_000 : 600_000);
    while (Date.now() < settleDeadline) {
      idle = (await stack.client.workflow.count(query)).count;
      if (idle >= customers) break;
      await sleep(1_000);
    }
    const settleSeconds = (Date.now() - t0) / 1000;
    log(`scale/archiver: started in ${startAllSeconds.toFixed(1)} s, ${idle}/${customers} idle after ${settleSeconds.toFixed(1)} s`);
    await sleep(3_000);
    const cpu0 = process.cpuUsage();
    const ticks0 = childTicks();
    const w0 = Date.now();
    await sleep(idleWindowS * 1000);
    const wallUs = (Date.now() - w0) * 1000;
    const cpu = process.cpuUsage(cpu0);
    const idleCpuPercent = ((cpu.user + cpu.system) / wallUs) * 100;
    const serverIdleCpuPercent = ((childTicks() - ticks0) / 100 / (wallUs / 1e6)) * 100;
    const rss = process.memoryUsage().rss / 2 ** 20;
    const maxRss = process.resourceUsage().maxRSS / 1024;

    await notifier.start();
    const wakes: number[] = [];
    for (const id of [ids[0], ids[Math.floor(customers / 2)], ids[customers - 1]] as string[]) {
      const w = Date.now();
      await insertItems(database.db, stack.media.url, id, 1);
      while ((await archivedCount(database.db, [id])) < 1 && Date.now() - w < 60_000) await sleep(50);
      wakes.push((Date.now() - w) / 1000);
    }
    const row: ResultRow = {
      scenario: 'scale', design: 'archiver', customers, idleCustomers: idle, startAllSeconds: round(startAllSeconds, 1), settleSeconds: round(settleSeconds, 1),
      workerRssMB: round(rss, 0), workerMaxRssMB: round(maxRss, 0), idleCpuPercent: round(idleCpuPercent, 2), idleWindowSeconds: idleWindowS,
      serverIdleCpuPercent: round(serverIdleCpuPercent, 2), wakeSeconds: round(percentile([...wakes].sort((a, b) => a - b), 50), 2), wakeSamples: wakes.map((w) => round(w, 2)),
      note: 'RSS and CPU are of the whole bench process (worker + emulator + clients, one process); serverIdleCpuPercent is the Temporal dev server and postmaster',
    };
    return [row];
  } finally {
    await notifier.stop();
    await design.stop();
    await database.close();
  }
};
