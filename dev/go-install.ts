/**
 * `go install` of a pinned module into .tools/, with a progress line every 30 s, for the binaries
 * the cluster builds from source (the Temporal Server, its SQL tool, the Web UI server).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Checks that Go is on PATH. @throws naming what Go would build and what to set instead */
export async function requireGo(env: NodeJS.ProcessEnv, builds: string, instead: string): Promise<void> {
  try {
    await run('go', ['version'], { env, timeout: 30_000 });
  } catch {
    throw new Error(`Go is not installed (or not on PATH): it builds ${builds}. Install Go, or ${instead}.`);
  }
}

/**
 * Runs `go install <target>` with GOBIN=`gobin`. @throws with the last lines of Go's output when
 * the build fails or takes longer than `timeoutMs`
 */
export async function goInstall(
  target: string,
  options: { gobin: string; what: string; env: NodeJS.ProcessEnv; log: (line: string) => void; timeoutMs: number },
): Promise<void> {
  await fs.mkdir(options.gobin, { recursive: true });
  options.log(`building ${options.what}: go install ${target}`);
  const started = Date.now();
  const progress = setInterval(
    () => options.log(`  still building (${Math.round((Date.now() - started) / 1000)} s)`),
    30_000,
  );
  try {
    await run('go', ['install', target], {
      env: { ...options.env, GOBIN: options.gobin },
      timeout: options.timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const output = ((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n').slice(-15);
    throw new Error(`go install ${target} failed:\n${output.join('\n')}`);
  } finally {
    clearInterval(progress);
  }
}
