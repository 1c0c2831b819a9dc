import type { DevClusterOptions } from '../cluster.ts';
import { AfterlifeClusterError } from '../cluster-error.ts';
import type { Component } from '../paths.ts';

/** The options a start needs, with their defaults applied. */
export type StartOptions = Pick<
  DevClusterOptions,
  'nodes' | 'realNodes' | 'keda' | 'knative' | 'knativeControllers' | 'registry' | 'clusterServices'
>;

/** What a start runs, decided from the options before anything starts. */
export interface StartPlan {
  readonly keda: boolean;
  /** Knative Serving CRDs and ConfigMaps. */
  readonly knative: boolean;
  /** Knative Serving's webhook, controller and HPA-class autoscaler as processes. */
  readonly knativeControllers: boolean;
  readonly registry: boolean;
  /** kube-proxy, cluster DNS and the `kubernetes` Service for pods (real nodes only). */
  readonly clusterServices: boolean;
  readonly kwokNodes: number;
  readonly realNodes: number;
  /** The components to build (or take from the cache), in build order. */
  readonly components: readonly Component[];
}

/** Applies the defaults; OPTIONS_INVALID when real nodes are asked for without the registry. */
export function planStart(options: StartOptions): StartPlan {
  const keda = options.keda ?? true;
  const knative = options.knative ?? true;
  const registry = options.registry ?? true;
  const realNodes = options.realNodes ?? 1;
  if (realNodes > 0 && !registry) {
    throw new AfterlifeClusterError(
      'OPTIONS_INVALID',
      'real nodes pull their images from the local registry: keep registry on',
    );
  }
  const components: Component[] = ['kubernetes', 'etcd', 'kwok'];
  if (keda) components.push('keda');
  if (knative) components.push('knative-config');
  const knativeControllers = knative && (options.knativeControllers ?? false);
  if (knativeControllers || realNodes > 0) components.push('knative');
  if (knativeControllers) components.push('knative-networking');
  if (registry) components.push('registry', 'oras');
  if (realNodes > 0) components.push('containerd', 'runc', 'cni');
  const clusterServices = realNodes > 0 && (options.clusterServices ?? true);
  if (options.clusterServices === true && realNodes === 0) {
    throw new AfterlifeClusterError(
      'OPTIONS_INVALID',
      'cluster services (kube-proxy, DNS) need a real node: realNodes ≥ 1',
    );
  }
  if (clusterServices) components.push('coredns');
  components.push('helm');
  return {
    keda,
    knative,
    knativeControllers,
    registry,
    clusterServices,
    kwokNodes: options.nodes ?? 2,
    realNodes,
    components,
  };
}
