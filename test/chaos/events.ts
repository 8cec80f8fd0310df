import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresPart, TemporalPart } from './parts.js';
import type { ChaosEvent } from './plan.js';
import type { SeededRandom } from './rng.js';
import type { WorkerSupervisor } from './supervisor.js';

export interface ChaosTargets {
  workers: WorkerSupervisor;
  temporal: TemporalPart;
  postgres: PostgresPart;
}

/**
 * Fires the plan's events one after another, each once the drain has settled its share of the
 * items, while the drain runs. Counts the restarts; the supervisor counts the kills.
 */
export class ChaosSchedule {
  temporalRestarts = 0;
  postgresRestarts = 0;
  /** Set when an event could not be carried out (a server did not come back). */
  error: string | undefined;
  private finished: boolean;
  private stopped = false;
  private readonly running: Promise<void>;

  constructor(
    events: readonly ChaosEvent[],
    /** Share of the items archived or failed so far. */
    progress: () => number,
    private readonly targets: ChaosTargets,
    private readonly rng: SeededRandom,
    private readonly log: (line: string) => void,
  ) {
    this.finished = events.length === 0;
    this.running = (async () => {
      for (const event of events) {
        while (progress() < event.atFraction) {
          if (this.stopped) return;
          await sleep(200);
        }
        await this.fire(event);
      }
      this.finished = true;
    })().catch((err: unknown) => {
      this.error = `a chaos event failed: ${(err as Error).stack ?? String(err)}`;
      this.log(this.error);
    });
  }

  /** Whether every event has happened. */
  get done(): boolean {
    return this.finished;
  }

  /** Fires nothing more, and waits up to `timeoutMs` for an event in progress to finish. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    await Promise.race([this.running, sleep(timeoutMs)]);
  }

  private async fire(event: ChaosEvent): Promise<void> {
    const { workers, temporal, postgres } = this.targets;
    await sleep(event.delayMs);
    if (event.kind === 'kill-worker') {
      const worker = await workers.killOne(this.rng, 120_000);
      this.log(worker === undefined ? 'kill skipped: no worker was up for 120 s' : `SIGKILLed worker ${worker}`);
    } else if (event.kind === 'restart-temporal') {
      this.log(`restarting Temporal (${event.hard ? 'SIGKILL' : 'SIGTERM'}, down ${event.downMs} ms)`);
      await temporal.restart(event.downMs, event.hard);
      this.temporalRestarts += 1;
      this.log('Temporal is back');
    } else {
      this.log(`restarting Postgres (down ${event.downMs} ms)`);
      await postgres.restart(event.downMs);
      this.postgresRestarts += 1;
      this.log('Postgres is back');
    }
  }
}
