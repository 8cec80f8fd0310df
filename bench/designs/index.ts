import { startArchiver } from './archiver.js';
import { startCron } from './cron.js';
import { startFixed } from './fixed.js';
import type { DesignContext, DesignName, RunningDesign } from './types.js';

export const ALL_DESIGNS: DesignName[] = ['archiver', 'cron', 'fixed'];

export function startDesign(name: DesignName, ctx: DesignContext): Promise<RunningDesign> {
  if (name === 'archiver') return startArchiver(ctx);
  return Promise.resolve(name === 'cron' ? startCron(ctx) : startFixed(ctx));
}
