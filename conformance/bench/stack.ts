// The local stack a bench runs against (a cluster with a real node, Afterlife installed by helm),
// stopped on SIGINT/SIGTERM as well as when the bench ends: an interrupted bench leaves nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, gatewayAdmins } from '@afterlife/core';
import { AFTERLIFE_NAMESPACE, type LocalAfterlife, startLocalAfterlife } from '@afterlife/devcluster';
import { type EventOutcome, sendEvent } from '../src/load.ts';
import { type ColdStartTrace, startColdStartTrace } from '../src/trace.ts';

export const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Starts the stack, runs `bench` against it, stops it — also when interrupted (exit 130/143). */
export async function withBenchStack(
  name: string,
  bench: (local: LocalAfterlife) => Promise<void>,
  values: Readonly<Record<string, unknown>> = {},
  cluster: { readonly hpaSyncPeriod?: string } = {},
): Promise<void> {
  let stopping: Promise<void> | undefined;
  let local: LocalAfterlife | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    print(`\n${signal}: stopping the local stack…`);
    stopping ??= (local?.stop() ?? Promise.resolve()).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  local = await startLocalAfterlife({
    name: `${name}-${process.pid}`,
    logger: createLogger('bench', { level: 'warn' }),
    print,
    values,
    ...cluster,
  });
  try {
    await bench(local);
  } finally {
    stopping ??= local.stop();
    await stopping;
  }
}

/**
 * Wakes a Knative Service at zero with one event and traces its cold start. A random pause first:
 * kubelet relists once a second, and a round started right after the previous pod's teardown
 * (itself done at a relist) would always hit the same phase of it.
 */
export async function tracedColdStart(
  local: LocalAfterlife,
  namespace: string,
  service: string,
): Promise<{ outcome: EventOutcome; trace: ColdStartTrace }> {
  await sleep(500 + Math.random() * 1000);
  const revision = `${service}-00001`;
  const tracer = await startColdStartTrace({
    kubeConfig: local.kubeConfig,
    namespace,
    revision,
    deployment: `${revision}-deployment`,
    gatewayAdmins: () => gatewayAdmins(local.kubeConfig, { namespace: AFTERLIFE_NAMESPACE }),
    scalerAdminUrl: local.scalerAdminUrl,
  });
  const sentAt = Date.now();
  const outcome = await sendEvent({ url: local.functionUrl(namespace, service), workMs: 0 }, 'bench', () =>
    performance.now(),
  ).catch((error: unknown) => {
    tracer.stop();
    throw error;
  });
  const trace = await tracer.finish({ sentAt, repliedAt: sentAt + outcome.latencyMs });
  if (outcome.status !== 200) throw new Error(`${namespace}/${service}: the cold start answered ${outcome.status}`);
  return { outcome, trace };
}
