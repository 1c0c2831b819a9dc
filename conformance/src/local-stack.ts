import type { Logger } from '@afterlife/core';
import type { KubeConfig } from '@kubernetes/client-node';
import type { VersionFallbacks } from './environment.ts';

/**
 * A cluster made on this machine for the run (`--local`), with Afterlife installed on it. The
 * suite does not make one itself — it runs against any cluster and carries no launcher; the
 * `afterlife` CLI passes one in (`afterlife conformance --local`: the devcluster with real nodes
 * and `helm install` of the chart).
 */
export interface LocalStack {
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  readonly gatewayUrl: string;
  readonly gatewayAdminUrl: string;
  readonly scalerAddress: string;
  readonly scalerAdminUrl: string;
  /** The reference function's image in the stack's registry. */
  readonly image: string;
  /** Versions to report where the cluster does not label them (components run as processes). */
  readonly versions: VersionFallbacks;
  /** Stops the kube-apiserver and starts it again (a fault only a local stack can inject); seconds it was down. */
  restartApiServer(): Promise<number>;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  /** Names the cluster (and its state directory). */
  readonly name: string;
  readonly logger: Logger;
  readonly print: (line: string) => void;
}

export type LocalStackLauncher = (options: LocalStackOptions) => Promise<LocalStack>;
