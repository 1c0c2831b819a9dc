import { pushNodeImages, pushQueueProxyImage } from '../images.ts';
import { ensureNodeTools } from '../node-tools.ts';
import type { BinaryResolver } from './binaries.ts';

/** References of the images the real nodes run (the state's `images`). */
export interface ClusterImages {
  readonly pause: string;
  readonly echoWasm: string;
  readonly echoNative: string;
  /** Knative's queue-proxy, pinned by digest. */
  readonly queue: string;
}

/** Pushes the pause image, the reference function (Wasm and native) and queue-proxy to the registry. */
export async function pushClusterImages(
  registry: string,
  input: { bins: BinaryResolver; knativeVersion: string },
): Promise<ClusterImages> {
  const tools = await ensureNodeTools();
  const pushed = await pushNodeImages(registry, tools);
  const queue = await pushQueueProxyImage(registry, await input.bins.bin('knative', 'queue'), input.knativeVersion);
  return {
    pause: pushed.pause.reference,
    echoWasm: pushed.echoWasm.reference,
    echoNative: pushed.echoNative.reference,
    queue: queue.pinned,
  };
}
