// Which Worker Deployment version a worker declares: the deployment's name and this build's id.
// The server routes each customer's workflow tasks to the deployment's current version, so a
// new build takes work only once an operator makes it current (`archiver deploy set-current`).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WorkerDeploymentOptions } from '@temporalio/worker';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The deployment workers join when ARCHIVER_DEPLOYMENT_NAME is unset. */
export const DEFAULT_DEPLOYMENT_NAME = 'archiver';

/**
 * Deployment names: Temporal writes a version as `<deployment>.<build id>`, so a name may not
 * hold a dot; build ids may. Both stay printable and short enough for the Web UI.
 */
export const DEPLOYMENT_NAME_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;
export const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;

/** A worker's place in a Worker Deployment. */
export interface WorkerVersion {
  deploymentName: string;
  buildId: string;
}

/**
 * This checkout's build id: the package version and the short git commit (`0.1.0-04e37fe`), or
 * the package version alone where git or the repository is missing, as in a Docker image (which
 * bakes ARCHIVER_BUILD_ID in at build time instead).
 */
export function defaultBuildId(root = ROOT): string {
  const { version } = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string };
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      timeout: 5_000,
      stdio: ['ignore', 'pipe', 'ignore'],
      encoding: 'utf8',
    }).trim();
    return /^[0-9a-f]{4,40}$/.test(commit) ? `${version}-${commit}` : version;
  } catch {
    return version;
  }
}

/**
 * The SDK's deployment options for a versioned worker. Customer workflows auto-upgrade: each
 * moves to the current version at its next workflow task, so old workers can stop as soon as the
 * new version is current, and `patched()` guards every change a running history could notice
 * (see "Changing workflow code safely" in the README for why not pinned).
 */
export function workerDeploymentOptions(version: WorkerVersion): WorkerDeploymentOptions {
  return {
    version: { deploymentName: version.deploymentName, buildId: version.buildId },
    useWorkerVersioning: true,
    defaultVersioningBehavior: 'AUTO_UPGRADE',
  };
}
