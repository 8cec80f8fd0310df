import type { AccountConfig, QueuedFault, ServerErrorStatus, WriteContentionMode } from './types.js';
import { accessError, ApiFailure, rateLimited } from './wire.js';

/** mulberry32: tiny, fast and seedable, so a test that fixes the seed sees the same faults every run. */
export class Rng {
  private state = 0;

  constructor(seed: number) {
    this.reseed(seed);
  }

  reseed(seed: number): void {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Draws only for 0 < p < 1, so shares of 0 and 1 leave the sequence of other draws unchanged. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[items.length === 1 ? 0 : Math.floor(this.next() * items.length)] as T;
  }
}

export type EffectiveConfig = Required<AccountConfig>;

export const BUILTIN_CONFIG: EffectiveConfig = {
  uploadsPerSecond: null,
  burst: null,
  writeContention: 'none',
  batchContentionShare: 1,
  commitLatencyMs: 0,
  quotaBytes: null,
  dataTransportExceeded: false,
  latencyMs: 0,
  serverErrorShare: 0,
  serverErrorStatuses: [500, 503, 504],
  serverErrorRetryAfter: null,
  resetShare: 0,
  lostResponseShare: 0,
  stallShare: 0,
  tooManyRequestsShare: 0,
  plainText429Share: 0,
  noRetryAfterShare: 0,
  faultRoutes: null,
};

const SHARES = [
  'batchContentionShare',
  'serverErrorShare',
  'resetShare',
  'lostResponseShare',
  'stallShare',
  'tooManyRequestsShare',
  'plainText429Share',
  'noRetryAfterShare',
] as const;
const NON_NEGATIVE = ['commitLatencyMs', 'latencyMs'] as const;
const NULLABLE_NON_NEGATIVE = ['quotaBytes', 'serverErrorRetryAfter'] as const;
const NULLABLE_POSITIVE = ['uploadsPerSecond', 'burst'] as const;
const MODES: readonly WriteContentionMode[] = ['none', '429', '409'];
const STATUSES: readonly number[] = [500, 502, 503, 504];

/** Checks a config patch from options, a method call or the admin API; throws TypeError naming the field. */
export function validateConfig(patch: unknown): AccountConfig {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw new TypeError('config must be an object');
  const p = patch as Record<string, unknown>;
  const bad = (key: string, want: string): never => {
    throw new TypeError(`${key} must be ${want}, got ${JSON.stringify(p[key])}`);
  };
  for (const key of Object.keys(p)) {
    if (!(key in BUILTIN_CONFIG)) throw new TypeError(`unknown config field ${JSON.stringify(key)}`);
  }
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  for (const k of SHARES)
    if (p[k] !== undefined && !(num(p[k]) && p[k] >= 0 && p[k] <= 1)) bad(k, 'a share from 0 to 1');
  for (const k of NON_NEGATIVE) if (p[k] !== undefined && !(num(p[k]) && p[k] >= 0)) bad(k, 'a number ≥ 0');
  for (const k of NULLABLE_NON_NEGATIVE)
    if (p[k] !== undefined && p[k] !== null && !(num(p[k]) && p[k] >= 0)) bad(k, 'a number ≥ 0 or null');
  for (const k of NULLABLE_POSITIVE)
    if (p[k] !== undefined && p[k] !== null && !(num(p[k]) && p[k] > 0)) bad(k, 'a positive number or null');
  // A bucket smaller than one request would refuse everything forever.
  if (typeof p['burst'] === 'number' && p['burst'] < 1) bad('burst', 'at least 1 or null');
  if (p['dataTransportExceeded'] !== undefined && typeof p['dataTransportExceeded'] !== 'boolean')
    bad('dataTransportExceeded', 'true or false');
  if (p['writeContention'] !== undefined && !MODES.includes(p['writeContention'] as WriteContentionMode))
    bad('writeContention', '"none", "429" or "409"');
  const statuses = p['serverErrorStatuses'];
  if (
    statuses !== undefined &&
    !(Array.isArray(statuses) && statuses.length > 0 && statuses.every((s) => STATUSES.includes(s as number)))
  ) {
    bad('serverErrorStatuses', 'a non-empty list of 500, 502, 503, 504');
  }
  const routes = p['faultRoutes'];
  if (routes !== undefined && routes !== null && !(Array.isArray(routes) && routes.every((r) => typeof r === 'string')))
    bad('faultRoutes', 'a list of route names or null');
  return p;
}

/** Later layers win; an undefined field in a layer inherits. */
export function mergeConfig(...layers: AccountConfig[]): AccountConfig {
  const out: Record<string, unknown> = {};
  for (const layer of layers) for (const [k, v] of Object.entries(layer)) if (v !== undefined) out[k] = v;
  return out;
}

const KINDS: readonly QueuedFault['fault'][] = [
  500,
  502,
  503,
  504,
  'reset',
  'lost_response',
  'stall',
  'too_many_requests',
  'too_many_requests_text',
  'too_many_write_operations',
];

export function validateQueuedFaults(faults: unknown): QueuedFault[] {
  if (!Array.isArray(faults)) throw new TypeError('faults must be a list');
  for (const f of faults as Partial<QueuedFault>[]) {
    if (typeof f !== 'object' || f === null || !KINDS.includes(f.fault as QueuedFault['fault']))
      throw new TypeError(`fault must be one of ${KINDS.join(', ')}, got ${JSON.stringify(f?.fault)}`);
    if (f.route !== undefined && typeof f.route !== 'string') throw new TypeError('route must be a string');
    if (f.retryAfter !== undefined && !(typeof f.retryAfter === 'number' && f.retryAfter >= 0))
      throw new TypeError('retryAfter must be a number ≥ 0');
  }
  return faults as QueuedFault[];
}

export function faultApplies(cfg: EffectiveConfig, route: string): boolean {
  return cfg.faultRoutes === null ? route !== 'oauth2/token' : cfg.faultRoutes.includes(route);
}

/** What the fault injector does with one request. `fail` answers at once; the others need the socket. */
export type FaultDecision =
  | { kind: 'none'; loseResponse: boolean }
  | { kind: 'reset' | 'stall' }
  | { kind: 'fail'; label: string; failure: ApiFailure };

const HTML = (status: number, title: string): string =>
  `<html>\r\n<head><title>${status} ${title}</title></head>\r\n<body>\r\n<center><h1>${status} ${title}</h1></center>\r\n</body>\r\n</html>\r\n`;

/** The bodies real 5xx answers have been seen with: nothing, proxy HTML pages, envoy's text. */
export function serverError(status: ServerErrorStatus, retryAfter: number | null | undefined): ApiFailure {
  const headers: Record<string, string> =
    retryAfter !== null && retryAfter !== undefined && status === 503 ? { 'Retry-After': String(retryAfter) } : {};
  if (status === 500) return new ApiFailure(500, null, headers);
  if (status === 502) return new ApiFailure(502, HTML(502, 'Bad Gateway'), headers, 'text/html');
  if (status === 504) return new ApiFailure(504, HTML(504, 'Gateway Time-out'), headers, 'text/html');
  return new ApiFailure(
    503,
    'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
    headers,
  );
}

/**
 * What Dropbox answers an upload once the team is over its monthly Data Transport quota: an
 * AccessError, whose member `invalid_account_type` is a union and so nests under its own name.
 */
export function dataTransportExceeded(): ApiFailure {
  return accessError({ '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'feature' } });
}

/** A too_many_requests 429 whose shape (text or JSON, Retry-After or not) follows the account's shares. */
export function tooManyRequests(cfg: EffectiveConfig, rng: Rng, retryAfter: number, forceText = false): ApiFailure {
  const omit = rng.chance(cfg.noRetryAfterShare);
  const plainText = forceText || rng.chance(cfg.plainText429Share);
  return rateLimited('too_many_requests', { retryAfter: omit ? undefined : retryAfter, plainText });
}

export function tooManyWriteOperations(cfg: EffectiveConfig, rng: Rng, retryAfter = 1): ApiFailure {
  return rateLimited('too_many_write_operations', {
    retryAfter: rng.chance(cfg.noRetryAfterShare) ? undefined : retryAfter,
  });
}

function fromQueue(f: QueuedFault, cfg: EffectiveConfig, rng: Rng): FaultDecision {
  switch (f.fault) {
    case 'reset':
    case 'stall':
      return { kind: f.fault };
    case 'lost_response':
      return { kind: 'none', loseResponse: true };
    case 'too_many_requests':
    case 'too_many_requests_text':
      return {
        kind: 'fail',
        label: f.fault,
        failure: tooManyRequests(cfg, rng, f.retryAfter ?? 1, f.fault === 'too_many_requests_text'),
      };
    case 'too_many_write_operations':
      return { kind: 'fail', label: f.fault, failure: tooManyWriteOperations(cfg, rng, f.retryAfter ?? 1) };
    default:
      return {
        kind: 'fail',
        label: String(f.fault),
        failure: serverError(f.fault, f.retryAfter ?? cfg.serverErrorRetryAfter),
      };
  }
}

/** Scripted faults first (the first queued one for this route), then the random shares in a fixed order. */
export function drawFault(cfg: EffectiveConfig, rng: Rng, route: string, queue: QueuedFault[]): FaultDecision {
  const i = queue.findIndex((f) => (f.route === undefined ? route !== 'oauth2/token' : f.route === route));
  if (i >= 0) return fromQueue(queue.splice(i, 1)[0] as QueuedFault, cfg, rng);
  if (!faultApplies(cfg, route)) return { kind: 'none', loseResponse: false };
  if (rng.chance(cfg.stallShare)) return { kind: 'stall' };
  if (rng.chance(cfg.resetShare)) return { kind: 'reset' };
  if (rng.chance(cfg.serverErrorShare)) {
    const status = rng.pick(cfg.serverErrorStatuses);
    return { kind: 'fail', label: String(status), failure: serverError(status, cfg.serverErrorRetryAfter) };
  }
  if (rng.chance(cfg.tooManyRequestsShare))
    return { kind: 'fail', label: 'too_many_requests', failure: tooManyRequests(cfg, rng, 1) };
  return { kind: 'none', loseResponse: rng.chance(cfg.lostResponseShare) };
}
