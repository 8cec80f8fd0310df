import type { DesignName } from '../designs/types.js';
import type { Sample } from '../sampler.js';
import type { BenchStack } from '../stack.js';

export type ScenarioName =
  'steady' | 'limit-change' | 'huge-and-small' | 'ceiling' | 'scale' | 'warm-start' | 'live-backfill';

export interface ScenarioOptions {
  quick: boolean;
  designs: DesignName[];
  log: (message: string) => void;
  /** live-backfill: the backfill's size (--backfill-items). */
  backfillItems?: number | undefined;
}

/** One object per scenario and design (and mode) in the results file. */
export interface ResultRow {
  scenario: ScenarioName;
  design: DesignName;
  [key: string]: unknown;
  series?: Sample[];
  /** Vertical markers for the plots, e.g. limit changes. */
  events?: Array<{ t: number; label: string }>;
}

export type Scenario = (stack: BenchStack, options: ScenarioOptions) => Promise<ResultRow[]>;
