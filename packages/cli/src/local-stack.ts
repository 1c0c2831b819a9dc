import type { LocalStack, LocalStackLauncher, VersionFallbacks } from '@afterlife/conformance';
import { type LocalAfterlife, startLocalAfterlife } from '@afterlife/devcluster';

/** What the devcluster built KEDA and Knative Serving from, as a report states it (they run as processes). */
export function devclusterVersions(local: LocalAfterlife): VersionFallbacks {
  const { keda, knative } = local.versions;
  return {
    keda: { version: keda.replace(/^v/, ''), source: 'devcluster build; KEDA runs as processes here' },
    knative: { version: `knative.dev/serving ${knative}`, source: 'devcluster build from source' },
  };
}

/** The devcluster's stack as the conformance suite sees it. */
export function asLocalStack(local: LocalAfterlife): LocalStack {
  return {
    kubeConfig: local.kubeConfig,
    kubeconfigPath: local.kubeconfigPath,
    gatewayUrl: local.gatewayUrl,
    gatewayAdminUrl: local.gatewayAdminUrl,
    scalerAddress: local.scalerAddress,
    scalerAdminUrl: local.scalerAdminUrl,
    image: local.image,
    versions: devclusterVersions(local),
    restartApiServer: () => local.restartApiServer(),
    stop: () => local.stop(),
  };
}

/** `afterlife conformance --local`: a devcluster with real nodes and the chart installed by helm. */
export const launchLocalStack: LocalStackLauncher = async (options) =>
  asLocalStack(
    await startLocalAfterlife({
      ...options,
      // The suite's scenarios set their own cooldown and polling on each function.
      values: { autoscaler: { defaults: { pollingIntervalSeconds: 1 } } },
    }),
  );
