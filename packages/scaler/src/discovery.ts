import { InformerRunner, type Logger, makeLeanInformer } from '@afterlife/core';
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import type { GatewayServiceRef } from './config.ts';

/** Tells the scaler which gateway admin URLs exist right now. */
export interface GatewayDiscovery {
  start(onChange: (urls: readonly string[]) => void): Promise<void>;
  stop(): Promise<void>;
}

/** A fixed list (AFTERLIFE_SCALER_GATEWAY_URLS). */
export function staticDiscovery(urls: readonly string[]): GatewayDiscovery {
  return {
    async start(onChange) {
      onChange([...new Set(urls)].sort());
    },
    async stop() {},
  };
}

/**
 * The admin URLs of a Service's endpoints: every address of an endpoint that is serving
 * (`serving` is true, or unset and `ready` is not false), on the port named `portName`.
 * Terminating-but-serving gateways stay in: they are still draining held events.
 */
export function gatewayUrlsFromSlices(slices: readonly V1EndpointSlice[], portName: string): string[] {
  const urls = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = slice.ports?.find((p) => p.name === portName)?.port;
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const serving = endpoint.conditions?.serving ?? endpoint.conditions?.ready ?? true;
      if (!serving) continue;
      for (const address of endpoint.addresses) {
        urls.add(slice.addressType === 'IPv6' ? `http://[${address}]:${port}` : `http://${address}:${port}`);
      }
    }
  }
  return [...urls].sort();
}

/** Watches the EndpointSlices of the gateway Service (label kubernetes.io/service-name). */
export function endpointSliceDiscovery(
  kubeConfig: KubeConfig,
  ref: GatewayServiceRef,
  logger: Logger,
): GatewayDiscovery {
  const api = kubeConfig.makeApiClient(DiscoveryV1Api);
  const labelSelector = `kubernetes.io/service-name=${ref.name}`;
  const informer = makeLeanInformer<V1EndpointSlice>(
    kubeConfig,
    `/apis/discovery.k8s.io/v1/namespaces/${ref.namespace}/endpointslices`,
    () => api.listNamespacedEndpointSlice({ namespace: ref.namespace, labelSelector }),
    { labelSelector },
  );
  const runner = new InformerRunner(informer, {
    logger,
    what: `the EndpointSlices of Service ${ref.namespace}/${ref.name}`,
  });
  return {
    async start(onChange) {
      let last = '';
      const publish = (): void => {
        const urls = gatewayUrlsFromSlices(informer.list(ref.namespace), ref.portName);
        const text = urls.join(',');
        if (text === last) return;
        last = text;
        logger.info({ service: `${ref.namespace}/${ref.name}`, gateways: urls }, 'gateway endpoints changed');
        onChange(urls);
      };
      informer.on('add', publish);
      informer.on('update', publish);
      informer.on('delete', publish);
      await runner.start();
      publish();
    },
    async stop() {
      await runner.stop();
    },
  };
}
