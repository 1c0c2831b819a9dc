import { type KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';
import { CoreError } from './errors.ts';

/**
 * When each step of a pod's start was seen, in ms of `performance.now()` (the API's own
 * timestamps have one-second resolution, too coarse for a start measured in milliseconds).
 */
export interface PodStart {
  readonly name: string;
  readonly uid: string;
  readonly firstSeen: number;
  /** Seen before it was scheduled, so the timestamps measure its whole start. */
  readonly fromCreation: boolean;
  readonly scheduled?: number;
  /** Sandbox and network ready (PodReadyToStartContainers, or a pod IP). */
  readonly sandboxReady?: number;
  /** Every container running. */
  readonly started?: number;
  readonly ready?: number;
  readonly podIp?: string;
  readonly pod: V1Pod;
}

export interface PodStartTracker {
  /** Starts seen so far, by pod name. */
  starts(): PodStart[];
  /** Resolves with the pod's IP once it has one. */
  podIp(name: string, timeoutMs: number): Promise<string>;
  stop(): void;
}

/** Watches the pods matching `labelSelector`/`fieldSelector` and records their start steps. */
export async function trackPodStarts(
  kubeConfig: KubeConfig,
  namespace: string,
  selectors: { labelSelector?: string; fieldSelector?: string } = {},
): Promise<PodStartTracker> {
  const starts = new Map<string, PodStart>();
  const waiters = new Map<string, Array<(ip: string) => void>>();
  const request = await new Watch(kubeConfig).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { ...selectors },
    (_type: string, pod: V1Pod) => {
      const now = performance.now();
      const name = pod.metadata?.name ?? '';
      const uid = pod.metadata?.uid ?? '';
      const previous = starts.get(name);
      const seen =
        previous && previous.uid === uid
          ? previous
          : { name, uid, firstSeen: now, fromCreation: !pod.spec?.nodeName, pod };
      const condition = (type: string) => pod.status?.conditions?.some((c) => c.type === type && c.status === 'True');
      const podIp = pod.status?.podIP || undefined;
      const statuses = pod.status?.containerStatuses ?? [];
      const next: PodStart = {
        ...seen,
        pod,
        ...(seen.scheduled === undefined && pod.spec?.nodeName ? { scheduled: now } : {}),
        ...(seen.sandboxReady === undefined && (condition('PodReadyToStartContainers') || podIp)
          ? { sandboxReady: now }
          : {}),
        ...(seen.started === undefined && statuses.length > 0 && statuses.every((s) => s.state?.running)
          ? { started: now }
          : {}),
        ...(seen.ready === undefined && condition('Ready') ? { ready: now } : {}),
        ...(podIp ? { podIp } : {}),
      };
      starts.set(name, next);
      if (podIp) for (const resolve of waiters.get(name)?.splice(0) ?? []) resolve(podIp);
    },
    () => undefined,
  );
  return {
    starts: () => [...starts.values()],
    podIp: (name, timeoutMs) =>
      new Promise((resolve, reject) => {
        const known = starts.get(name)?.podIp;
        if (known) return resolve(known);
        const timer = setTimeout(
          () => reject(new CoreError('WAIT_TIMEOUT', `pod ${name} had no IP after ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.set(name, [
          ...(waiters.get(name) ?? []),
          (ip) => {
            clearTimeout(timer);
            resolve(ip);
          },
        ]);
      }),
    stop: () => request.abort(),
  };
}
