import { resolve } from 'node:path';
import { createLogger, parseFlags, UsageError } from '@afterlife/core';
import { readPreviousRun } from './compare.ts';
import type { LocalStackLauncher } from './local-stack.ts';
import { PROFILES, withLoad } from './profile.ts';
import { headlineLines, previousRunLine } from './render.ts';
import { startConformance } from './runner.ts';

const USAGE = `afterlife-conformance — prove Afterlife scale-to-zero Wasm functions on a cluster

Usage:
  afterlife-conformance [--kubeconfig P] [--context C] [--local] [--keep] [--faults]
                        [--workload-image IMG] [--profile short|full] [--report-dir DIR]
                        [--gateway-url URL] [--gateway-admin-url URL] [--scaler-address HOST:PORT]
                        [--scaler-admin-url URL] [--afterlife-namespace NS]
                        [--namespace-prefix P] [--load-rate N] [--load-duration S]
                        [--load-concurrency N] [--expected-replicas N] [--compare PREVIOUS.json]

  --local               make a local cluster (real nodes), helm install Afterlife on it and
                        run cluster mode against it — with the Afterlife CLI:
                        afterlife conformance --local (this package carries no launcher)
  --faults              also inject faults under load (delete a gateway, the scaler and a
                        function pod; restart the autoscaler); always on with --local, which
                        also restarts the kube-apiserver
  --afterlife-namespace where Afterlife is installed (default afterlife-system): the pods the
                        faults delete
  --gateway-url         the gateway's event port as reachable from here (required on a cluster;
                        e.g. kubectl -n afterlife-system port-forward svc/afterlife-gateway 8080:80)
  --gateway-admin-url   the gateway's admin port (/readyz, /v1/counts, /v1/cold-starts), optional
  --scaler-admin-url    the scaler's metrics port (/v1/activations), optional: the cold-start
                        trace's scaler hop
  --keep                keep the test namespace (and the local stack) for debugging
  --compare FILE        show each headline figure next to a previous run's (its conformance.json)
Exit code: 0 all passed, 1 a check or scenario failed, 2 usage error.
`;

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got "${value}"`);
  return n;
}

export interface ConformanceCliOptions {
  /** What `--local` makes (the `afterlife` CLI passes the devcluster's); without it `--local` is a usage error. */
  readonly local?: LocalStackLauncher;
}

/** Runs the suite as the `afterlife-conformance` / `afterlife conformance` command; returns the exit code. */
export async function runConformanceCli(argv: string[], cli: ConformanceCliOptions = {}): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      local: { type: 'boolean' },
      keep: { type: 'boolean' },
      faults: { type: 'boolean' },
      'afterlife-namespace': { type: 'string' },
      'workload-image': { type: 'string' },
      profile: { type: 'string' },
      'report-dir': { type: 'string' },
      'gateway-url': { type: 'string' },
      'gateway-admin-url': { type: 'string' },
      'scaler-address': { type: 'string' },
      'scaler-admin-url': { type: 'string' },
      'namespace-prefix': { type: 'string' },
      'load-rate': { type: 'string' },
      'load-duration': { type: 'string' },
      'load-concurrency': { type: 'string' },
      'expected-replicas': { type: 'string' },
      compare: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (values.help) {
    print(USAGE);
    return 0;
  }
  const profileName = values.profile ?? 'short';
  if (profileName !== 'short' && profileName !== 'full') {
    throw new UsageError(`--profile must be short or full, got "${profileName}"`);
  }
  const profile = withLoad(PROFILES[profileName], {
    ratePerSecond: positive('load-rate', values['load-rate']),
    durationSeconds: positive('load-duration', values['load-duration']),
    concurrency: positive('load-concurrency', values['load-concurrency']),
    expectedReplicas: positive('expected-replicas', values['expected-replicas']),
  });
  if (values.local && !cli.local) {
    throw new UsageError(
      '--local needs the local cluster launcher, which ships with the Afterlife CLI: run `afterlife conformance --local` (afterlife-conformance itself runs against any cluster you give it)',
    );
  }
  const previous = values.compare ? await readPreviousRun(resolve(values.compare)) : undefined;
  const logger = createLogger('conformance', { level: process.env.AFTERLIFE_LOG_LEVEL === 'debug' ? 'debug' : 'warn' });
  const run = startConformance({
    ...(values.local && cli.local ? { local: cli.local } : {}),
    faults: values.faults ?? false,
    ...(values['afterlife-namespace'] ? { afterlifeNamespace: values['afterlife-namespace'] } : {}),
    keep: values.keep ?? false,
    profile,
    reportDir: resolve(values['report-dir'] ?? 'conformance-report'),
    namespacePrefix: values['namespace-prefix'] ?? 'afterlife-conformance',
    logger,
    print,
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    ...(values['workload-image'] ? { workloadImage: values['workload-image'] } : {}),
    ...(values['gateway-url'] ? { gatewayUrl: values['gateway-url'] } : {}),
    ...(values['gateway-admin-url'] ? { gatewayAdminUrl: values['gateway-admin-url'] } : {}),
    ...(values['scaler-address'] ? { scalerAddress: values['scaler-address'] } : {}),
    ...(values['scaler-admin-url'] ? { scalerAdminUrl: values['scaler-admin-url'] } : {}),
    ...(previous ? { previous } : {}),
  });
  let interrupted = false;
  let markCancelled = () => {};
  const cancelled = new Promise<void>((resolve) => {
    markCancelled = resolve;
  });
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    print('\ninterrupted: cleaning up…');
    void run.cancel().finally(markCancelled);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Whichever comes first: the run's end, or the end of the clean-up after Ctrl-C (a test in
  // flight may still be polling a stack that is gone).
  const outcome = await Promise.race([
    run.done.then(
      (value) => ({ value, error: undefined }),
      (error: unknown) => ({ value: undefined, error }),
    ),
    cancelled.then(() => ({ value: undefined, error: undefined })),
  ]);
  if (interrupted) {
    await cancelled;
    return 130;
  }
  if (outcome.error !== undefined || !outcome.value) throw outcome.error;
  const { result, files } = outcome.value;
  const c = result.counts;
  print('');
  print(
    `${result.passed ? '✔ PASSED' : '✘ FAILED'}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped of ${c.tests}`,
  );
  if (result.headline && result.scenarios.length > 0) {
    print(previous ? `Headline, ${previousRunLine(previous, result.profile)}` : 'Headline');
    for (const line of headlineLines(result.headline, previous)) print(`  ${line}`);
  }
  print(`  JUnit ${files.junit}\n  JSON  ${files.json}\n  HTML  ${files.html}`);
  const kept = run.keptKubeconfig();
  if (kept) {
    print(`--keep: the local stack keeps running (KUBECONFIG=${kept}); Ctrl-C stops it`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Listeners stay registered until exit: with none left, a loader such as tsx re-raises the
    // signal and the process dies before the stack is stopped.
    // Signal listeners alone do not keep Node's event loop alive.
    const keepAlive = setInterval(() => {}, 60_000);
    await new Promise<void>((resolve) => {
      process.on('SIGINT', () => resolve());
      process.on('SIGTERM', () => resolve());
    });
    clearInterval(keepAlive);
    await run.stopKept();
  }
  return result.passed ? 0 : 1;
}
