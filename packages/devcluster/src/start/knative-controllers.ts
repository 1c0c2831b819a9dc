import { join } from 'node:path';
import type { Logger } from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import { type KnativeServing, startKnativeServing } from '../knative.ts';
import type { BinaryResolver } from './binaries.ts';

/** Knative Serving's webhook, controller and HPA-class autoscaler, from the prepared `knative` components. */
export async function startKnativeControllers(input: {
  kubeConfig: KubeConfig;
  kubeconfig: string;
  stateDir: string;
  logDir: string;
  bins: BinaryResolver;
  /** queue-proxy in the local registry (real nodes run it); Knative's placeholder otherwise. */
  queueSidecarImage: string | undefined;
  registry: string;
  log: Logger | undefined;
  timeoutMs: number;
}): Promise<KnativeServing> {
  const knativeDir = input.bins.dir('knative');
  return startKnativeServing({
    kubeConfig: input.kubeConfig,
    kubeconfigPath: input.kubeconfig,
    stateDir: input.stateDir,
    logDir: input.logDir,
    binDir: knativeDir,
    configDir: join(knativeDir, 'config'),
    networkingDir: input.bins.dir('knative-networking'),
    hpaBinDir: knativeDir,
    ...(input.queueSidecarImage ? { queueSidecarImage: input.queueSidecarImage } : {}),
    ...(input.registry ? { registry: input.registry } : {}),
    ...(input.log ? { logger: input.log } : {}),
    timeoutMs: input.timeoutMs,
  });
}
