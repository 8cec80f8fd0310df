import type { ItemKind } from '../../db/items.js';
import { faultyUrl, syntheticUrl } from '../../dev/media-server.js';
import { SeededRandom } from './rng.js';

/** Source faults that heal after a request or two: their items must end archived. */
export const TRANSIENT_SOURCE_FAULTS = ['500', 'hang', 'stall', 'short'] as const;
/** Source faults that never heal: their items must end failed. */
export const PERMANENT_SOURCE_FAULTS = ['404', '410', 'ftp', 'blocked-port'] as const;
export const SOURCE_FAULT_NAMES = [...TRANSIENT_SOURCE_FAULTS, ...PERMANENT_SOURCE_FAULTS] as const;
export type SourceFaultName = (typeof SOURCE_FAULT_NAMES)[number];

/** How many requests a transient source fault lasts before the source serves the item normally. */
const HEALS_AFTER: Record<(typeof TRANSIENT_SOURCE_FAULTS)[number], number> = {
  '500': 2,
  hang: 1,
  stall: 1,
  short: 2,
};

/** A port on the fetch standard's blocked list: fetch refuses it every time, so the item can never work. */
const BLOCKED_PORT = 1;

export type ChaosEventKind = 'kill-worker' | 'restart-temporal' | 'restart-postgres';

/** One disruption, fired once the drain has settled `atFraction` of the items, `delayMs` later. */
export interface ChaosEvent {
  kind: ChaosEventKind;
  atFraction: number;
  delayMs: number;
  /** How long a restarted server stays down. */
  downMs: number;
  /** Restart by SIGKILL instead of a clean shutdown (Temporal only). */
  hard: boolean;
}

export interface PlannedCustomer {
  id: string;
  name: string;
  token: string;
  accountId: string;
}

export interface PlannedItem {
  /** Unique in the run; stored in the item's metadata to find its database id after the insert. */
  key: string;
  customerId: string;
  kind: ItemKind;
  occurredAt: Date;
  /** Synthetic media name and size; an SMS carries `body` instead. */
  media: string;
  bytes: number;
  body: string | null;
  /** Set only in the chaos run's plan: how this item's source misbehaves. */
  sourceFault: SourceFaultName | undefined;
}

export interface ChaosPlanOptions {
  seed: number;
  items: number;
  customers: number;
  kills: number;
  temporalRestarts: number;
  postgresRestarts: number;
  /** Items per source fault kind. */
  sourceFaultsPerKind: number;
  sourceFaults: readonly SourceFaultName[];
}

export interface ChaosPlan {
  customers: PlannedCustomer[];
  items: PlannedItem[];
  events: ChaosEvent[];
}

/** The folder root and layout every chaos customer gets, so the verifier can compute each path itself. */
export const FOLDER_ROOT = '/Archiver';
export const PATH_TEMPLATE = '{root}/{kind}/{id}.{ext}';

const KIND_WEIGHTS: [ItemKind, number][] = [
  ['call_recording', 0.4],
  ['voicemail', 0.3],
  ['fax', 0.15],
  ['sms', 0.15],
];
const MIB = 1024 * 1024;
const WORDS = ['call', 'me', 'back', 'please', 'about', 'the', 'invoice', 'meeting', 'at', 'noon', 'thanks', 'ok'];

function kindOf(rng: SeededRandom): ItemKind {
  let r = rng.next();
  for (const [kind, weight] of KIND_WEIGHTS) {
    if ((r -= weight) < 0) return kind;
  }
  return 'voicemail';
}

function bytesOf(kind: ItemKind, rng: SeededRandom): number {
  if (kind === 'call_recording') return rng.int(20_000, 200_000);
  if (kind === 'voicemail') return rng.int(4_000, 60_000);
  return rng.int(10_000, 120_000);
}

/**
 * The whole run, drawn from the seed: customers, items (kinds, sizes, times), which items' sources
 * misbehave and how, and when the workers are killed and the servers restarted. The fault-free
 * baseline uses the same plan and ignores the source faults and events.
 */
export function buildPlan(o: ChaosPlanOptions): ChaosPlan {
  const rng = new SeededRandom(o.seed);
  const customers: PlannedCustomer[] = Array.from({ length: o.customers }, (_, i) => ({
    id: `chaos-${i + 1}`,
    name: `Chaos customer ${i + 1}`,
    token: `chaos-token-${o.seed}-${i + 1}`,
    accountId: `dbid:chaos-${i + 1}`,
  }));
  const epoch = Date.UTC(2026, 0, 1);
  const items: PlannedItem[] = [];
  for (let n = 0; n < o.items; n++) {
    const customer = customers[n % customers.length] as PlannedCustomer;
    const kind = kindOf(rng);
    const key = `s${o.seed}-${customer.id}-${n}`;
    const body =
      kind === 'sms' ? `SMS ${key}: ${Array.from({ length: rng.int(3, 40) }, () => rng.pick(WORDS)).join(' ')}` : null;
    items.push({
      key,
      customerId: customer.id,
      kind,
      occurredAt: new Date(epoch + rng.int(0, 300 * 86_400) * 1000),
      media: key,
      bytes: body === null ? bytesOf(kind, rng) : Buffer.byteLength(body),
      body,
      sourceFault: undefined,
    });
  }
  // A few recordings larger than one 4 MiB content-hash block.
  const media = items.filter((i) => i.body === null);
  const recordings = media.filter((i) => i.kind === 'call_recording');
  for (const item of rng.shuffle(recordings).slice(0, Math.max(2, Math.round(o.items / 1000)))) {
    item.bytes = rng.int(4 * MIB + 1, 9 * MIB);
  }
  // Small media items get the source faults, spread over the customers.
  const candidates = rng.shuffle(media.filter((i) => i.bytes < 4 * MIB));
  for (const fault of o.sourceFaults) {
    for (let k = 0; k < o.sourceFaultsPerKind; k++) {
      const item = candidates.pop();
      if (item) item.sourceFault = fault;
    }
  }
  return { customers, items, events: planEvents(rng, o) };
}

function planEvents(rng: SeededRandom, o: ChaosPlanOptions): ChaosEvent[] {
  const kinds: ChaosEventKind[] = rng.shuffle([
    ...Array<ChaosEventKind>(o.kills).fill('kill-worker'),
    ...Array<ChaosEventKind>(o.temporalRestarts).fill('restart-temporal'),
    ...Array<ChaosEventKind>(o.postgresRestarts).fill('restart-postgres'),
  ]);
  const at = kinds.map(() => rng.between(0.03, 0.8)).sort((a, b) => a - b);
  let temporalRestarts = 0;
  return kinds.map((kind, i) => ({
    kind,
    atFraction: at[i] as number,
    delayMs: rng.int(0, 3_000),
    downMs: rng.int(2_000, 6_000),
    // Every other Temporal restart is a crash rather than a clean shutdown.
    hard: kind === 'restart-temporal' && temporalRestarts++ % 2 === 1,
  }));
}

/** What the item must end as: its source fault decides, and the baseline has none. */
export function expectedEnd(item: PlannedItem): 'archived' | 'failed' {
  return (PERMANENT_SOURCE_FAULTS as readonly string[]).includes(item.sourceFault ?? '') ? 'failed' : 'archived';
}

/** The URL the item's row points at; null for an SMS. */
export function sourceUrlOf(item: PlannedItem, mediaBase: string): string | null {
  if (item.body !== null) return null;
  const name = item.media;
  switch (item.sourceFault) {
    case undefined:
      return syntheticUrl(mediaBase, name, item.bytes);
    case '404':
    case '410':
      return faultyUrl(mediaBase, item.sourceFault, name, item.bytes);
    case 'ftp':
      return `ftp://127.0.0.1/media/${encodeURIComponent(name)}`;
    case 'blocked-port':
      return `http://127.0.0.1:${BLOCKED_PORT}/synthetic/${encodeURIComponent(name)}?bytes=${item.bytes}`;
    default:
      return faultyUrl(mediaBase, item.sourceFault, name, item.bytes, HEALS_AFTER[item.sourceFault]);
  }
}

/** The plan of the fault-free baseline: the same customers and items, every source healthy, no events. */
export function withoutFaults(plan: ChaosPlan): ChaosPlan {
  return { ...plan, items: plan.items.map((i) => ({ ...i, sourceFault: undefined })), events: [] };
}
