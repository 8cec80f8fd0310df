import cliProgress from 'cli-progress';

export interface CustomerProgress {
  customerId: string;
  archived: number;
  failed: number;
  total: number;
}

/**
 * Live per-customer progress: a bar each on a terminal, a log line every few seconds otherwise
 * (CI, files), so long runs always show they are moving.
 */
export class ProgressDisplay {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly multi: cliProgress.MultiBar | undefined;
  private lastLine = 0;

  /** @param stream where to draw; bars only on a terminal */
  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    this.multi = stream.isTTY
      ? new cliProgress.MultiBar(
          {
            format: ' {customer} |{bar}| {value}/{total} archived, {failed} failed | {rate}/s | ETA {eta_formatted}',
            hideCursor: true,
            clearOnComplete: false,
            etaBuffer: 50,
            stream,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  }

  update(rows: CustomerProgress[], ratePerCustomer: Map<string, number>): void {
    if (!this.multi) {
      if (Date.now() - this.lastLine < 5_000) return;
      this.lastLine = Date.now();
      const archived = rows.reduce((n, r) => n + r.archived, 0);
      const total = rows.reduce((n, r) => n + r.total, 0);
      this.stream.write(`progress: ${archived}/${total} archived across ${rows.length} customers\n`);
      return;
    }
    for (const row of rows) {
      const payload = {
        customer: row.customerId.padEnd(12),
        failed: row.failed,
        rate: (ratePerCustomer.get(row.customerId) ?? 0).toFixed(1),
      };
      let bar = this.bars.get(row.customerId);
      if (!bar) {
        bar = this.multi.create(row.total, row.archived, payload);
        this.bars.set(row.customerId, bar);
      }
      bar.setTotal(row.total);
      bar.update(row.archived, payload);
    }
  }

  stop(): void {
    this.multi?.stop();
  }
}
