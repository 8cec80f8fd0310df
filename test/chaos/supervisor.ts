import type { WriteStream } from 'node:fs';
import { spawnWorkerProcess, type WorkerProcess } from '../support/worker-process.js';
import { logStream, stopChild, track } from './parts.js';
import type { SeededRandom } from './rng.js';

/** A worker process that ended without being killed by the chaos, with the end of its output. */
export interface WorkerExit {
  worker: number;
  atSeconds: number;
  code: number | null;
  signal: string | null;
  /** Whether it had started (printed "worker started") before it ended. */
  hadStarted: boolean;
  tail: string;
}

interface Slot {
  index: number;
  log: WriteStream;
  process?: WorkerProcess;
  ready: boolean;
  /** Whether the current process printed "worker started". */
  startedOnce: boolean;
  killed: boolean;
  crashesInARow: number;
  output: string;
}

/** How soon a killed worker is started again, as systemd's Restart=always would. */
const RESTART_AFTER_KILL_MS = 1_000;
/** A worker that ends on its own is restarted with backoff, up to this. */
const MAX_RESTART_BACKOFF_MS = 8_000;

/**
 * Keeps `count` worker processes running, as a supervisor would: a worker that dies, killed or
 * not, is started again promptly. Records every exit the chaos did not cause.
 */
export class WorkerSupervisor {
  private readonly slots: Slot[];
  private stopping = false;
  private readonly started = Date.now();
  readonly exits: WorkerExit[] = [];
  kills = 0;

  constructor(
    private readonly env: Record<string, string>,
    count: number,
    dir: string,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      index,
      log: logStream(dir, `worker-${index + 1}.log`),
      ready: false,
      startedOnce: false,
      killed: false,
      crashesInARow: 0,
      output: '',
    }));
  }

  start(): void {
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Workers that have started polling and are still alive. */
  get up(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Waits until every worker polls. @throws after `timeoutMs` */
  async waitAllUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.up < this.slots.length) {
      if (Date.now() > deadline) {
        throw new Error(
          `only ${this.up} of ${this.slots.length} workers started within ${timeoutMs} ms; last output:\n` +
            this.slots.map((s) => s.output.slice(-1500)).join('\n---\n'),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * SIGKILLs one running worker, chosen by `rng`. It first waits up to `timeoutMs` for every
   * worker to be up, so one crash at a time hits a pool that is otherwise whole and the others
   * keep working; after that it kills any one that is up.
   * @returns the worker's number, or undefined if none was up
   */
  async killOne(rng: SeededRandom, timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.up < this.slots.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const running = this.slots.filter((s) => s.ready && s.process);
    if (running.length === 0) return undefined;
    const slot = rng.pick(running);
    slot.killed = true;
    slot.ready = false;
    slot.log.write(`--- chaos: SIGKILL at ${this.elapsed()} s\n`);
    slot.process?.child.kill('SIGKILL');
    this.kills += 1;
    return slot.index + 1;
  }

  /** Stops every worker (SIGTERM, then SIGKILL) and starts none again. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.process) await stopChild(slot.process.child, 15_000);
        slot.log.end();
      }),
    );
  }

  private elapsed(): string {
    return ((Date.now() - this.started) / 1000).toFixed(1);
  }

  private spawn(slot: Slot): void {
    if (this.stopping) return;
    const worker = spawnWorkerProcess(this.env);
    track(worker.child);
    slot.process = worker;
    slot.ready = false;
    slot.startedOnce = false;
    slot.killed = false;
    slot.output = '';
    slot.log.write(`--- chaos: worker ${slot.index + 1} starting at ${this.elapsed()} s (pid ${worker.child.pid})\n`);
    const capture = (chunk: Buffer): void => {
      slot.log.write(chunk);
      slot.output = (slot.output + chunk.toString()).slice(-8_000);
    };
    worker.child.stdout?.on('data', capture);
    worker.child.stderr?.on('data', capture);
    worker.started.then(
      () => {
        if (slot.process === worker) {
          slot.ready = true;
          slot.startedOnce = true;
          slot.crashesInARow = 0;
        }
      },
      () => undefined, // the exit handler below records it
    );
    worker.child.once('exit', (code, signal) => {
      const hadStarted = slot.startedOnce;
      slot.ready = false;
      if (this.stopping) return;
      let delay = RESTART_AFTER_KILL_MS;
      if (!slot.killed) {
        this.exits.push({
          worker: slot.index + 1,
          atSeconds: (Date.now() - this.started) / 1000,
          code,
          signal,
          hadStarted,
          tail: slot.output.slice(-1_500),
        });
        slot.crashesInARow += 1;
        delay = Math.min(MAX_RESTART_BACKOFF_MS, RESTART_AFTER_KILL_MS * 2 ** (slot.crashesInARow - 1));
      }
      slot.log.write(`--- chaos: worker exited (${signal ?? code}); restarting in ${delay} ms\n`);
      setTimeout(() => this.spawn(slot), delay);
    });
  }
}
