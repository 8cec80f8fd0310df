import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Folders whose code may not hold SQL: every statement lives in db/. */
const NO_SQL_FOLDERS = ['workflows', 'activities', 'workers', 'client', 'dev'];
/** The product: what ships in the worker image and the CLI. */
const PRODUCT_FOLDERS = ['workflows', 'activities', 'workers', 'client', 'db', 'temporal', 'secrets'];

function tsFilesIn(folder: string): string[] {
  const dir = join(ROOT, folder);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules') return [];
    if (statSync(path).isDirectory()) return tsFilesIn(relative(ROOT, path));
    return name.endsWith('.ts') ? [path] : [];
  });
}

function parse(file: string, text = readFileSync(file, 'utf8')): ts.SourceFile {
  return ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
}

function walk(node: ts.Node, visit: (node: ts.Node) => void): void {
  visit(node);
  node.forEachChild((child) => walk(child, visit));
}

/**
 * SQL as this project writes it: upper-case keywords in a string or template literal. Comments
 * are never looked at, and prose in strings rarely has upper-case SELECT … FROM.
 */
const SQL_PATTERNS: RegExp[] = [
  /\bSELECT\b[\s\S]*\bFROM\b/,
  /\bSELECT\s+(pg_\w+|1\b|coalesce|count|DISTINCT|now)/,
  /\bINSERT\s+INTO\b/,
  /\bUPDATE\s+\w+(\s+\w+)?\s+SET\b/,
  /\bDELETE\s+FROM\b/,
  /^\s*(LISTEN|UNLISTEN|NOTIFY)\s+\S/,
  /\bpg_notify\s*\(/,
  /\bCREATE\s+(TABLE|DATABASE|INDEX|UNIQUE|EXTENSION|SCHEMA|TRIGGER|FUNCTION|OR\s+REPLACE|TYPE|VIEW|ROLE|USER)\b/,
  /\b(ALTER|DROP)\s+(TABLE|DATABASE|INDEX|SCHEMA|TRIGGER|FUNCTION|TYPE|VIEW)\b/,
  /^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\s*;?\s*$/,
];

/** Every string or template literal of `source` that reads as SQL, with its line. */
function sqlIn(source: ts.SourceFile): { line: number; text: string }[] {
  const found: { line: number; text: string }[] = [];
  walk(source, (node) => {
    let text: string | undefined;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
    else if (ts.isTemplateExpression(node))
      text = [node.head.text, ...node.templateSpans.map((s) => `$x${s.literal.text}`)].join('');
    if (text !== undefined && SQL_PATTERNS.some((p) => p.test(text))) {
      found.push({
        line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1,
        text: text.trim().split('\n')[0] ?? '',
      });
    }
  });
  return found;
}

/** Every module `source` imports or re-exports, statically or with import(). */
function importsOf(source: ts.SourceFile): { line: number; specifier: string }[] {
  const found: { line: number; specifier: string }[] = [];
  walk(source, (node) => {
    let specifier: ts.Expression | undefined;
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier)
      specifier = node.moduleSpecifier;
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword)
      specifier = node.arguments[0];
    if (specifier && ts.isStringLiteralLike(specifier)) {
      found.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, specifier: specifier.text });
    }
  });
  return found;
}

/** The top-level folder a relative import lands in; undefined for packages and Node built-ins. */
function folderOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return relative(ROOT, resolve(dirname(file), specifier)).split(sep)[0];
}

/** Which top-level folders each folder must not import. */
const FORBIDDEN: Record<string, string[]> = {
  workflows: ['dev', 'packages'],
  activities: ['dev', 'packages'],
  workers: ['dev', 'packages', 'client'],
  client: ['dev', 'packages', 'activities'],
  temporal: ['dev', 'packages', 'client', 'workers', 'activities', 'db'],
  // Only pg, db/ itself and secrets/ (tokens are sealed at rest).
  db: ['dev', 'packages', 'client', 'workers', 'activities', 'workflows', 'temporal'],
  // Node's crypto and nothing of the product: both db/ and temporal/ build on it.
  secrets: ['dev', 'packages', 'client', 'workers', 'activities', 'workflows', 'temporal', 'db'],
};

function importViolations(file: string, source = parse(file)): string[] {
  const from = relative(ROOT, file).split(sep)[0] ?? '';
  const forbidden = FORBIDDEN[from] ?? [];
  return importsOf(source)
    .filter(({ specifier }) => forbidden.includes(folderOf(file, specifier) ?? ''))
    .map(({ line, specifier }) => `${relative(ROOT, file)}:${line}: imports ${specifier}`);
}

describe('SQL lives only in db/', () => {
  it('no .ts file in workflows/, activities/, workers/, client/ or dev/ holds SQL', () => {
    const hits = NO_SQL_FOLDERS.flatMap(tsFilesIn).flatMap((file) =>
      sqlIn(parse(file)).map(({ line, text }) => `${relative(ROOT, file)}:${line}: ${text}`),
    );
    expect(hits, `move these statements into a db/ function:\n${hits.join('\n')}`).toEqual([]);
  });

  it('finds the SQL this project writes, and not prose', () => {
    const code = [
      'await db.query(`SELECT id, name FROM customers WHERE id = $1`, [id]);',
      "await db.query(`UPDATE archive_items\n    SET state = 'pending' WHERE id = $1`);",
      'await tx.query(`UPDATE customers SET token = $2 WHERE id = $1`);',
      'await db.query(`INSERT INTO archive_items (customer_id) VALUES ($1)`);',
      "await db.query('DELETE FROM archive_items');",
      'await connection.query(`LISTEN ${ITEMS_CHANNEL}`);',
      "await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);",
      'await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);',
      "await client.query('BEGIN');",
      "await client.query('ROLLBACK');",
    ];
    for (const line of code) expect(sqlIn(parse('x.ts', line)), line).toHaveLength(1);
    const prose = [
      '// Select the items from the batch, then update the rows: insert into the queue and commit.',
      '/** Leases items in one statement (SELECT … FOR UPDATE SKIP LOCKED); see db/items.ts. */',
      "log.info('select a customer from the list, then begin');",
      "throw new Error('cannot commit: the lease was lost; insert it again');",
      'console.log(`update ${id}: set limits`);',
    ];
    for (const line of prose) expect(sqlIn(parse('x.ts', line)), line).toEqual([]);
  });
});

describe('each folder imports only downward', () => {
  it('the product never imports dev/, workers/ never client/, client/ never activities/, db/ only itself', () => {
    const hits = PRODUCT_FOLDERS.flatMap(tsFilesIn).flatMap((file) => importViolations(file));
    expect(hits, hits.join('\n')).toEqual([]);
  });

  it('notices a forbidden import', () => {
    const check = (file: string, code: string) => importViolations(join(ROOT, file), parse(join(ROOT, file), code));
    expect(check('workers/config.ts', "import { readStackFile } from '../dev/stack-file.js';")).toHaveLength(1);
    expect(check('workers/main.ts', "import { connectClient } from '../client/archiver-client.js';")).toHaveLength(1);
    expect(check('client/cli.ts', "import type { Db } from '../activities/db.js';")).toHaveLength(1);
    expect(check('client/cli.ts', "export { seedDemo } from '../dev/seed.js';")).toHaveLength(1);
    expect(check('activities/index.ts', "const m = await import('../dev/postgres.js');")).toHaveLength(1);
    expect(check('db/items.ts', "import { remotePathFor } from '../activities/paths.js';")).toHaveLength(1);
    expect(check('client/cli.ts', "import { upsertCustomer } from '../db/customers.js';")).toEqual([]);
    expect(check('secrets/aead.ts', "import type { Db } from '../db/pool.js';")).toHaveLength(1);
  });
});
