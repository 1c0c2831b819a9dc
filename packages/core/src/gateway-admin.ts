import type { KubeConfig } from '@kubernetes/client-node';
import { type CountsSnapshot, type FunctionCounts, parseCountsSnapshot } from './counts.ts';
import { CoreError, errorMessage } from './errors.ts';
import { isRecord } from './knative.ts';
import { kubeRequest } from './kube.ts';

/** The chart's labels on gateway pods. */
export const GATEWAY_POD_SELECTOR = 'app.kubernetes.io/name=afterlife,app.kubernetes.io/component=gateway';

/** One gateway's admin API (`/v1/counts`, `/v1/cold-starts`, `/readyz`). */
export interface GatewayAdmin {
  /** The URL given, or `namespace/pod` when reached through the API server's pod proxy. */
  readonly where: string;
  /** GETs a JSON path of the admin API. */
  get(path: string): Promise<unknown>;
}

interface PodList {
  items: {
    metadata: { name: string; namespace: string };
    spec?: { containers?: { ports?: { name?: string; containerPort: number }[] }[] };
    status?: { phase?: string };
  }[];
}

function urlAdmin(url: string, timeoutMs: number): GatewayAdmin {
  return {
    where: url,
    async get(path) {
      const target = new URL(path, url);
      let response: Response;
      try {
        response = await fetch(target, {
          signal: AbortSignal.timeout(timeoutMs),
          headers: { accept: 'application/json' },
        });
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause;
        const why = cause === undefined ? errorMessage(error) : `${errorMessage(error)} (${errorMessage(cause)})`;
        throw new CoreError('COUNTS_UNAVAILABLE', `GET ${target.href} failed: ${why}`, { cause: error });
      }
      if (!response.ok) throw new CoreError('COUNTS_UNAVAILABLE', `GET ${target.href} answered ${response.status}`);
      return response.json();
    },
  };
}

/**
 * Every gateway's admin API: the URLs given (e.g. a port-forward), or else each running pod of
 * the chart's gateway Deployment through the API server's pod proxy — every replica, where a
 * Service or a port-forward reaches only one of them. `namespace` narrows the pod list (what a
 * namespaced Role allows); without it the whole cluster's gateway pods are listed.
 */
export async function gatewayAdmins(
  kubeConfig: KubeConfig,
  options: { readonly urls?: readonly string[]; readonly namespace?: string; readonly timeoutMs?: number } = {},
): Promise<GatewayAdmin[]> {
  const timeoutMs = options.timeoutMs ?? 3000;
  if (options.urls && options.urls.length > 0) return options.urls.map((url) => urlAdmin(url, timeoutMs));
  const scope = options.namespace ? `/api/v1/namespaces/${options.namespace}` : '/api/v1';
  const pods = (await kubeRequest(
    kubeConfig,
    'GET',
    `${scope}/pods?labelSelector=${encodeURIComponent(GATEWAY_POD_SELECTOR)}`,
  )) as PodList;
  const admins: GatewayAdmin[] = [];
  for (const pod of pods.items) {
    const port = pod.spec?.containers?.flatMap((c) => c.ports ?? []).find((p) => p.name === 'admin')?.containerPort;
    if (pod.status?.phase !== 'Running' || port === undefined) continue;
    const { name, namespace } = pod.metadata;
    admins.push({
      where: `${namespace}/${name}`,
      get: (path) =>
        kubeRequest(kubeConfig, 'GET', `/api/v1/namespaces/${namespace}/pods/${name}:${port}/proxy${path}`),
    });
  }
  return admins;
}

/** The counts snapshots of the gateways that answered, and why the others did not. */
export async function fetchAllCounts(
  admins: readonly GatewayAdmin[],
): Promise<{ snapshots: CountsSnapshot[]; unreachable: string[] }> {
  const snapshots: CountsSnapshot[] = [];
  const unreachable: string[] = [];
  await Promise.all(
    admins.map(async (admin) => {
      try {
        snapshots.push(parseCountsSnapshot(await admin.get('/v1/counts')));
      } catch (error) {
        unreachable.push(`${admin.where}: ${errorMessage(error)}`);
      }
    }),
  );
  return { snapshots, unreachable };
}

/** One function's counts summed over every gateway that knows it (undefined when none does). */
export function sumCounts(
  snapshots: readonly CountsSnapshot[],
  ref: { readonly namespace: string; readonly name: string },
): FunctionCounts | undefined {
  let sum: FunctionCounts | undefined;
  for (const snapshot of snapshots) {
    const fn = snapshot.functions.find((f) => f.namespace === ref.namespace && f.name === ref.name);
    if (!fn) continue;
    sum = sum
      ? {
          ...sum,
          pending: sum.pending + fn.pending,
          inFlight: sum.inFlight + fn.inFlight,
          delivered: sum.delivered + fn.delivered,
          failed: sum.failed + fn.failed,
          ratePerSecond: sum.ratePerSecond + fn.ratePerSecond,
        }
      : fn;
  }
  return sum;
}

/** One entry of a gateway's `GET /v1/cold-starts`: a revision's last cold start, as clients read it. */
export interface GatewayColdStart {
  readonly namespace: string;
  readonly name: string;
  /** The first event was held with no ready endpoint (epoch ms, the gateway's clock). */
  readonly heldAt: number;
  /** Its queue-proxy answered the activator probe (`via` `probe`), else null. */
  readonly endpointAnsweredAt: number | null;
  /** `probe`: delivered once queue-proxy answered, before kubelet Ready; `ready`: the EndpointSlice said ready. */
  readonly via: 'probe' | 'ready';
  /** The first held event's delivery started. */
  readonly deliveredAt: number;
  /** Its reply arrived; null while in flight or when none came. */
  readonly repliedAt: number | null;
}

/** The well-formed records of a `/v1/cold-starts` answer (a gateway from before it had them: none). */
export function parseColdStarts(body: unknown): GatewayColdStart[] {
  const list = isRecord(body) && Array.isArray(body.coldStarts) ? body.coldStarts : [];
  const nullable = (value: unknown) => (typeof value === 'number' ? value : null);
  return list.flatMap((entry): GatewayColdStart[] =>
    isRecord(entry) &&
    typeof entry.namespace === 'string' &&
    typeof entry.name === 'string' &&
    typeof entry.heldAt === 'number' &&
    typeof entry.deliveredAt === 'number' &&
    (entry.via === 'probe' || entry.via === 'ready')
      ? [
          {
            namespace: entry.namespace,
            name: entry.name,
            heldAt: entry.heldAt,
            endpointAnsweredAt: nullable(entry.endpointAnsweredAt),
            via: entry.via,
            deliveredAt: entry.deliveredAt,
            repliedAt: nullable(entry.repliedAt),
          },
        ]
      : [],
  );
}
