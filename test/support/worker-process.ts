import type { ChildProcess } from 'node:child_process';
import { spawnWorkerProcess, type WorkerProcess } from '../../dev/worker-process.js';

export { spawnWorkerProcess, type WorkerProcess };

/** Where a test's workers connect: its Temporal namespace, database and Dropbox emulator. */
export interface WorkerStack {
  temporal: { address: string; namespace: string };
  database: { url: string };
  emulator: { url: string };
}

/** Spawns workers against a test's stack and kills every one still running at the end. */
export function workerProcesses(stack: () => WorkerStack): { spawn(): WorkerProcess; killAll(): void } {
  const children: ChildProcess[] = [];
  return {
    spawn() {
      const { temporal, database, emulator } = stack();
      const worker = spawnWorkerProcess({
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: temporal.namespace,
        DATABASE_URL: database.url,
        DROPBOX_API_BASE: emulator.url,
      });
      children.push(worker.child);
      return worker;
    },
    killAll() {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}
