import { type RequestOptions, request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { CoreError } from './errors.ts';

const REQUEST_TIMEOUT_MS = 30_000;

/** The API server answered a status outside 2xx (`status`), or could not be asked. */
export class KubeRequestError extends CoreError {
  readonly status: number;

  constructor(status: number, message: string) {
    super('KUBE_REQUEST_FAILED', message);
    this.status = status;
  }
}

/**
 * A raw request to the API server (JSON in and out). Manifests go through here rather than the
 * typed client because the typed client's serializer drops keys it does not model (for example
 * `x-kubernetes-int-or-string` inside CRD schemas); so do paths it does not model (pod proxy).
 * A body that is not JSON (a pod's `/metrics` through the proxy) is answered as its text.
 */
export async function kubeRequest(
  kubeConfig: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<unknown> {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new CoreError('KUBE_REQUEST_FAILED', 'the kubeconfig has no current cluster');
  const url = new URL(path, server);
  const options: RequestOptions = { method, headers: { Accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS };
  await kubeConfig.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) options.headers = { ...options.headers, 'Content-Type': contentType };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          const json = /\bjson\b/.test(res.headers['content-type'] ?? 'application/json');
          resolve(text === '' ? undefined : json ? JSON.parse(text) : text);
        } else {
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // Not JSON; keep the raw text.
          }
          reject(new KubeRequestError(status, `${method} ${path}: ${status} ${message}`));
        }
      });
    });
    req.on('timeout', () =>
      req.destroy(new CoreError('KUBE_REQUEST_FAILED', `${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * A `KubeConfig` whose typed API clients share one connection pool per cluster and user.
 * `@kubernetes/client-node` 2.0.1 gives every typed request a new undici Agent (its
 * `createDispatcher` has no cache, unlike its https.Agent path), so each request handshakes a TLS
 * connection of its own and leaves it idle behind — the autoscaler's writes grew its native memory
 * with the number of functions. Users whose credentials come from an exec plugin (which may hand
 * out rotating client certificates) keep the per-request agent; CA and certificate files are read
 * once per identity.
 */
export class PooledKubeConfig extends KubeConfig {
  readonly #dispatchers = new Map<string, Dispatcher>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    const user = this.getCurrentUser();
    if (fresh === undefined || user?.exec !== undefined) return;
    const cluster = this.getCurrentCluster();
    const identity = JSON.stringify([
      cluster?.name,
      cluster?.server,
      cluster?.caData,
      cluster?.caFile,
      cluster?.tlsServerName,
      cluster?.skipTLSVerify,
      user?.name,
      user?.certData,
      user?.certFile,
      user?.keyData,
      user?.keyFile,
    ]);
    const shared = this.#dispatchers.get(identity);
    if (shared === undefined) {
      this.#dispatchers.set(identity, fresh);
      return;
    }
    context.setDispatcher(shared);
    // Never used: it has no connection to close.
    void fresh.close();
  }
}
