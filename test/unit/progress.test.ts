import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressDisplay } from '../../dev/progress.js';

/** A stream that says it is a terminal, capturing what is drawn on it. */
function fakeTerminal(isTTY: boolean): { stream: NodeJS.WriteStream; output: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  Object.assign(stream, {
    isTTY,
    columns: 120,
    rows: 40,
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
  });
  return { stream, output: () => text };
}

const rows = [
  { customerId: 'acme', archived: 40, failed: 1, total: 100 },
  { customerId: 'globex', archived: 100, failed: 0, total: 100 },
];

describe('npm start progress', () => {
  it('draws a bar per customer with its count, rate and ETA on a terminal', () => {
    const terminal = fakeTerminal(true);
    const display = new ProgressDisplay(terminal.stream);
    display.update(
      rows,
      new Map([
        ['acme', 12.5],
        ['globex', 0],
      ]),
    );
    display.stop();
    const screen = terminal.output();
    expect(screen).toMatch(/acme\s+\|[█░]+\| 40\/100 archived, 1 failed \| 12\.5\/s \| ETA/);
    expect(screen).toMatch(/globex\s+\|█+\| 100\/100 archived, 0 failed \| 0\.0\/s \| ETA/);
  });

  it('writes plain progress lines when the output is not a terminal', () => {
    const file = fakeTerminal(false);
    const display = new ProgressDisplay(file.stream);
    display.update(rows, new Map());
    display.stop();
    expect(file.output()).toBe('progress: 140/200 archived across 2 customers\n');
  });
});
