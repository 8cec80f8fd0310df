import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

/** Lints `code` as if it were the workflow file `workflows/names.ts`, returning the rule ids hit. */
async function ruleIdsFor(code: string, file = 'workflows/names.ts'): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}${file}` });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

describe('workflow sandbox lint rules', () => {
  it.each([
    ["import { readFileSync } from 'node:fs';\nexport const x = readFileSync;", 'Node built-ins'],
    ["import crypto from 'crypto';\nexport const x = crypto;", 'Node built-ins'],
    ["import pg from 'pg';\nexport const x = pg;", 'Postgres'],
    ["import { Dropbox } from 'dropbox';\nexport const x = Dropbox;", 'Dropbox'],
    [
      "import { createActivities } from '../activities/index.js';\nexport const x = createActivities;",
      'only types from activities',
    ],
  ])('rejects %j in workflow code', async (code, reason) => {
    const hits = await ruleIdsFor(code);
    expect(hits.join('\n')).toContain('no-restricted-imports');
    expect(hits.join('\n')).toContain(reason);
  });

  it('allows type-only imports from activities in workflow code', async () => {
    expect(
      await ruleIdsFor("import type { Activities } from '../activities/index.js';\nexport type X = Activities;"),
    ).toEqual([]);
  });

  it('flags a forgotten await', async () => {
    const hits = await ruleIdsFor('async function f(): Promise<void> {}\nexport function g(): void { f(); }');
    expect(hits.join('\n')).toContain('no-floating-promises');
  });
});
