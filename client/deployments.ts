// `archiver deploy`: the Worker Deployment the workers join, read and changed through the
// workflow service's deployment calls (the SDK's client has no wrapper for them), each within a
// deadline.

import type { Client } from '@temporalio/client';
import { OperatorError } from './archiver-client.js';

/** How long one deployment call may take; setting the current version waits for the server to route it. */
export const DEPLOYMENT_CALL_TIMEOUT_MS = 20_000;

const GRPC_NOT_FOUND = 5;
const GRPC_DEADLINE_EXCEEDED = 4;

/** One version of the deployment, as `deploy status` lists it. */
export interface DeploymentVersionStatus {
  buildId: string;
  /** inactive, current, ramping, draining or drained, as Temporal names them. */
  status: string;
  createdAt: Date | undefined;
  currentSince: Date | undefined;
}

export interface DeploymentStatus {
  name: string;
  currentBuildId: string | undefined;
  rampingBuildId: string | undefined;
  versions: DeploymentVersionStatus[];
}

/** The server took longer than DEPLOYMENT_CALL_TIMEOUT_MS to answer a deployment call; it may still apply it. */
export class DeploymentCallTimedOut extends Error {
  override name = 'DeploymentCallTimedOut';
}

function toDate(t: { seconds?: unknown; nanos?: number | null } | null | undefined): Date | undefined {
  if (!t?.seconds) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
}

function statusName(status: number | null | undefined): string {
  // temporal.api.enums.v1.WorkerDeploymentVersionStatus
  return ['unspecified', 'inactive', 'current', 'ramping', 'draining', 'drained'][status ?? 0] ?? `status ${status}`;
}

async function withDeadline<T>(client: Client, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await client.connection.withDeadline(Date.now() + DEPLOYMENT_CALL_TIMEOUT_MS, call);
  } catch (err) {
    if ((err as { code?: unknown }).code === GRPC_DEADLINE_EXCEEDED)
      throw new DeploymentCallTimedOut(
        `Temporal did not answer ${what} within ${DEPLOYMENT_CALL_TIMEOUT_MS / 1000}s; check it with: archiver deploy status`,
        { cause: err },
      );
    throw err;
  }
}

/**
 * The deployment's versions and which one is current.
 * @throws OperatorError when no versioned worker of `name` has ever polled
 */
export async function deploymentStatus(client: Client, name: string): Promise<DeploymentStatus> {
  let info;
  try {
    info = (
      await withDeadline(client, 'describing the deployment', () =>
        client.workflowService.describeWorkerDeployment({ namespace: client.options.namespace, deploymentName: name }),
      )
    ).workerDeploymentInfo;
  } catch (err) {
    if ((err as { code?: unknown }).code === GRPC_NOT_FOUND)
      throw new OperatorError(
        `no worker deployment "${name}" in namespace ${client.options.namespace} (ARCHIVER_DEPLOYMENT_NAME): start workers with ARCHIVER_WORKER_VERSIONING=true first`,
        { cause: err },
      );
    throw err;
  }
  const versions = (info?.versionSummaries ?? []).map((v) => ({
    buildId: v.deploymentVersion?.buildId ?? '',
    status: statusName(v.status),
    createdAt: toDate(v.createTime),
    currentSince: toDate(v.currentSinceTime),
  }));
  versions.sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
  const routing = info?.routingConfig;
  return {
    name,
    currentBuildId: routing?.currentDeploymentVersion?.buildId || undefined,
    rampingBuildId: routing?.rampingDeploymentVersion?.buildId || undefined,
    versions,
  };
}

/**
 * Makes `buildId` the deployment's current version: new customers start on it, and every running
 * (auto-upgrading) customer moves to it at its next workflow task.
 * @returns the build id that was current before, if any
 * @throws OperatorError for a build id no worker of the deployment has polled with
 */
export async function setCurrentVersion(
  client: Client,
  name: string,
  buildId: string,
): Promise<{ previousBuildId: string | undefined; alreadyCurrent: boolean }> {
  const before = await deploymentStatus(client, name);
  if (before.currentBuildId === buildId) return { previousBuildId: buildId, alreadyCurrent: true };
  if (!before.versions.some((v) => v.buildId === buildId)) {
    const known = before.versions.map((v) => v.buildId).join(', ') || 'none';
    throw new OperatorError(
      `no version "${buildId}" in worker deployment "${name}": a version exists once a worker with that ARCHIVER_BUILD_ID has polled (known: ${known})`,
    );
  }
  await withDeadline(client, 'setting the current version', () =>
    client.workflowService.setWorkerDeploymentCurrentVersion({
      namespace: client.options.namespace,
      deploymentName: name,
      buildId,
      identity: 'archiver deploy set-current',
    }),
  );
  return { previousBuildId: before.currentBuildId, alreadyCurrent: false };
}

/**
 * Waits until the deployment lists `buildId`, which the server does shortly after that build's
 * first worker polls, so that `setCurrentVersion` can take it.
 * @throws OperatorError naming the build id after `timeoutMs`
 */
export async function waitForVersion(client: Client, name: string, buildId: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await deploymentStatus(client, name).catch((err: unknown) => {
      if (err instanceof OperatorError) return undefined; // no deployment yet
      throw err;
    });
    if (status?.versions.some((v) => v.buildId === buildId)) return;
    if (Date.now() > deadline)
      throw new OperatorError(
        `version "${buildId}" of worker deployment "${name}" did not appear within ${timeoutMs / 1000}s: are its workers polling?`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}
