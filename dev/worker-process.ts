// A worker process as operators run it, for `npm run cluster`, the chaos suite and the tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker polls; rejects with its output if it exits first. */
  started: Promise<void>;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
  /** Everything it wrote so far, stdout and stderr interleaved. */
  output(): string;
}

/** `npm run worker` as its own process, exactly as operators run it, configured by `env` over this process's environment. */
export function spawnWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: ROOT,
    // Metrics off unless asked: test files run in parallel and would fight over the default port.
    env: { ...process.env, ARCHIVER_LOG_LEVEL: 'WARN', ARCHIVER_METRICS_ADDRESS: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const started = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker started')) resolve();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', (code) =>
      reject(new Error(`worker exited with ${code} before starting:\n${output.slice(-2000)}`)),
    );
  });
  // The test decides whether an early exit is a failure, through `exited`.
  started.catch(() => undefined);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, started, exited, output: () => output };
}
