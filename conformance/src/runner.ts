import { randomBytes } from 'node:crypto';
import { errorMessage, type Logger, UsageError } from '@afterlife/core';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import Mocha from 'mocha';
import { record, type ScenarioRecord, type SuiteContext, startSampler } from './context.ts';
import { detectEnvironment, type VersionFallbacks } from './environment.ts';
import { ConformanceError } from './errors.ts';
import type { TestResult } from './junit.ts';
import type { LocalStack, LocalStackLauncher } from './local-stack.ts';
import { formatPreflight, type PreflightResult, runPreflight } from './preflight.ts';
import type { Profile } from './profile.ts';
import type { PreviousRun } from './render.ts';
import {
  type ConformanceResult,
  conformanceHeadline,
  type ReportFiles,
  type ScenarioReport,
  writeReports,
} from './report.ts';
import { LOCAL_NAMESPACE, SCENARIOS, type Scenario } from './scenarios.ts';

/** The reference echo function (docs/conformance.md says how to push your own copy). */
export const DEFAULT_WORKLOAD_IMAGE = 'ghcr.io/afterlife-dev/echo:latest';
/** Label on every namespace the suite creates (value: the run id), for cleanup. */
export const RUN_LABEL = 'afterlife.dev/conformance-run';

export interface ConformanceOptions {
  /** `--local`: make a cluster with Afterlife on this machine and run cluster mode against it. */
  readonly local?: LocalStackLauncher;
  /** Inject faults under load (scenario 7); always on with a local stack. */
  readonly faults?: boolean;
  /** Namespace of the Afterlife install whose pods the faults delete (default afterlife-system). */
  readonly afterlifeNamespace?: string;
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly keep: boolean;
  readonly workloadImage?: string;
  readonly profile: Profile;
  readonly reportDir: string;
  readonly gatewayUrl?: string;
  readonly gatewayAdminUrl?: string;
  readonly scalerAddress?: string;
  /** The scaler's metrics port (`/v1/activations`), for the cold-start trace. */
  readonly scalerAdminUrl?: string;
  readonly namespacePrefix: string;
  readonly runtimeClassName?: string;
  readonly knativeNamespace?: string;
  readonly logger: Logger;
  readonly print: (line: string) => void;
  /** Mocha reporter for live progress (default `spec`). */
  readonly reporter?: string;
  /** A previous run's headline, shown next to this run's (`--compare`). */
  readonly previous?: PreviousRun;
}

export interface ConformanceRun {
  /** Resolves when the run finished and everything it started is cleaned up. */
  readonly done: Promise<{ result: ConformanceResult; files: ReportFiles }>;
  /** Ctrl-C: stop now, clean up (the namespace stays with --keep; a local stack always stops). */
  cancel(): Promise<void>;
  /** With `--local --keep`, after `done`: the kept stack's kubeconfig ('' when nothing was kept). */
  keptKubeconfig(): string;
  /** Stops a stack kept by `--local --keep`. */
  stopKept(): Promise<void>;
}

function preflightTests(results: readonly PreflightResult[]): TestResult[] {
  return results.map((r) => ({
    suite: 'preflight',
    title: r.name,
    state: r.ok ? 'passed' : 'failed',
    durationMs: 0,
    ...(r.ok ? { output: r.message } : { error: { message: `${r.message} — fix: ${r.fix}` } }),
  }));
}

/** Starts a conformance run. Never leaves a namespace or a local stack behind unless `keep`. */
export function startConformance(options: ConformanceOptions): ConformanceRun {
  const cleanups: Array<() => Promise<void>> = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaned ??= (async () => {
      for (const step of cleanups.reverse()) {
        try {
          await step();
        } catch (error) {
          options.logger.warn({ err: errorMessage(error) }, 'cleanup step failed');
        }
      }
    })();
    return cleaned;
  };
  let abortMocha: (() => void) | undefined;
  const state: RunState = { cancelling: false, kept: undefined, starting: undefined };
  const done = (async () => {
    try {
      return await run(options, cleanups, state, (abort) => {
        abortMocha = abort;
      });
    } finally {
      await cleanup();
    }
  })();
  return {
    done,
    async cancel() {
      state.cancelling = true;
      abortMocha?.();
      await cleanup();
      await state.kept?.stop();
      // Interrupted while the local stack was starting: let it finish, then stop it.
      const starting = await state.starting?.catch(() => undefined);
      await starting?.stop();
    },
    keptKubeconfig: () => state.kept?.kubeconfigPath ?? '',
    async stopKept() {
      const kept = state.kept;
      state.kept = undefined;
      await kept?.stop();
    },
  };
}

interface RunState {
  cancelling: boolean;
  kept: LocalStack | undefined;
  starting: Promise<LocalStack> | undefined;
}

/** The same stack whose stop() runs once however often it is called. */
function stopOnce(stack: LocalStack): LocalStack {
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= stack.stop();
    return stopped;
  };
  return { ...stack, stop };
}

async function run(
  options: ConformanceOptions,
  cleanups: Array<() => Promise<void>>,
  state: RunState,
  onMocha: (abort: () => void) => void,
): Promise<{ result: ConformanceResult; files: ReportFiles }> {
  const { print, logger, profile } = options;
  const startedAt = new Date();
  const t0 = performance.now();
  const clock = () => performance.now() - t0;
  let kubeConfig: KubeConfig;
  let gatewayUrl = options.gatewayUrl;
  const gatewayAdminUrl = options.gatewayAdminUrl;
  let preflightGatewayAdminUrl = gatewayAdminUrl;
  let scalerAddress = options.scalerAddress;
  let scalerAdminUrl = options.scalerAdminUrl;
  let image = options.workloadImage ?? DEFAULT_WORKLOAD_IMAGE;
  let local: LocalStack | undefined;
  let versionFallbacks: VersionFallbacks | undefined;
  if (options.local) {
    // Ctrl-C during start-up waits for this and stops what it started.
    state.starting = options.local({ name: `conformance-${process.pid}`, logger, print }).then(stopOnce);
    local = await state.starting;
    if (state.cancelling) throw new ConformanceError('CANCELLED', 'interrupted while the local stack started');
    const stack = local;
    cleanups.push(async () => {
      if (options.keep && !state.cancelling) {
        state.kept = stack;
        return;
      }
      await stack.stop();
    });
    kubeConfig = local.kubeConfig;
    // The admin URL goes through the gateway Service (any one pod): preflight's /readyz only; the
    // scenarios read every gateway pod through the API server's pod proxy.
    ({ gatewayUrl, scalerAddress, scalerAdminUrl } = local);
    preflightGatewayAdminUrl = local.gatewayAdminUrl;
    image = options.workloadImage ?? local.image;
    versionFallbacks = local.versions;
  } else {
    if (!gatewayUrl) {
      throw new UsageError(
        '--gateway-url is required against a cluster: port-forward the gateway (kubectl -n afterlife-system port-forward svc/afterlife-gateway 8080:80 9090:9090) and pass --gateway-url http://127.0.0.1:8080',
      );
    }
    kubeConfig = new KubeConfig();
    if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
    else kubeConfig.loadFromDefault();
    if (options.context) kubeConfig.setCurrentContext(options.context);
  }

  print('▸ preflight');
  const preflight = await runPreflight(kubeConfig, {
    ...(options.runtimeClassName ? { runtimeClassName: options.runtimeClassName } : {}),
    ...(options.knativeNamespace ? { knativeNamespace: options.knativeNamespace } : {}),
    ...(gatewayUrl ? { gatewayUrl } : {}),
    ...(preflightGatewayAdminUrl ? { gatewayAdminUrl: preflightGatewayAdminUrl } : {}),
    ...(scalerAddress ? { scalerAddress } : {}),
    ...(versionFallbacks ? { versionFallbacks } : {}),
  });
  for (const line of formatPreflight(preflight).split('\n')) print(`  ${line}`);
  const runId = randomBytes(3).toString('hex');
  const namespace = options.local ? LOCAL_NAMESPACE : `${options.namespacePrefix}-${runId}`;
  const environment = () =>
    detectEnvironment(kubeConfig, {
      runtimeClassName: options.runtimeClassName ?? 'wasmedge',
      ...(options.knativeNamespace ? { knativeNamespace: options.knativeNamespace } : {}),
      ...(versionFallbacks ? { fallbacks: versionFallbacks } : {}),
    });
  const base = {
    startedAt: startedAt.toISOString(),
    mode: options.local ? ('local' as const) : ('cluster' as const),
    profile: profile.name,
    settings: profile,
    namespace,
    image,
    preflight,
  };
  const reportOptions = options.previous ? { previous: options.previous } : {};
  if (preflight.some((r) => !r.ok)) {
    print('✘ preflight failed: fix the checks above and run again');
    const tests = preflightTests(preflight);
    const result = withHeadline({
      ...base,
      finishedAt: new Date().toISOString(),
      passed: false,
      counts: count(tests),
      environment: await environment(),
      scenarios: [],
    });
    return { result, files: await writeReports(options.reportDir, result, tests, reportOptions) };
  }

  if (state.cancelling) throw new ConformanceError('CANCELLED', 'interrupted');
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace, labels: { [RUN_LABEL]: runId } } } });
  cleanups.push(async () => {
    if (options.keep) {
      print(`--keep: namespace ${namespace} left in place`);
      return;
    }
    await core.deleteNamespace({ name: namespace });
  });
  print(`▸ scenarios in namespace ${namespace} (profile ${profile.name}, image ${image})`);

  const ctx: SuiteContext = {
    kubeConfig,
    local: options.local !== undefined,
    namespace,
    faults: options.local !== undefined || (options.faults ?? false),
    afterlifeNamespace: options.afterlifeNamespace ?? 'afterlife-system',
    ...(local ? { restartApiServer: local.restartApiServer } : {}),
    gatewayUrl: gatewayUrl ?? '',
    gatewayAdminUrl,
    scalerAdminUrl,
    image,
    runtimeClassName: options.runtimeClassName ?? 'wasmedge',
    profile,
    logger,
    print,
    clock,
    records: new Map<string, ScenarioRecord>(),
    samples: [],
    fn: undefined,
    watched: new Set<string>(),
  };
  const stopSampler = startSampler(ctx);
  let outcomes: Array<{ scenario: Scenario; test: TestResult }>;
  try {
    outcomes = await runScenarios(ctx, options.reporter ?? 'spec', onMocha);
  } finally {
    await stopSampler();
  }

  const scenarios: ScenarioReport[] = outcomes.map(({ scenario, test }, index) => {
    const rec = ctx.records.get(scenario.id);
    const start = rec?.start ?? 0;
    const end = rec?.end ?? start;
    const deployment = rec?.deployment ?? '';
    // A second past the end shows where it settled, but not into the next scenario's own load.
    const next = outcomes[index + 1];
    const nextStart = next ? ctx.records.get(next.scenario.id)?.start : undefined;
    const until = nextStart === undefined ? end + 1000 : Math.min(end + 1000, Math.max(end, nextStart));
    return {
      id: scenario.id,
      title: scenario.title,
      state: test.state,
      durationMs: test.durationMs,
      ...(test.error ? { error: test.error.message } : {}),
      metrics: rec?.metrics ?? {},
      notes: rec?.notes ?? [],
      deployment,
      start,
      end,
      samples: ctx.samples.filter((s) => s.deployment === deployment && s.t >= start - 500 && s.t <= until),
      events: rec?.events ?? [],
      markers: rec?.markers ?? [],
      ...(rec && rec.waterfall.length > 0 ? { waterfall: rec.waterfall } : {}),
    };
  });
  const tests = [...preflightTests(preflight), ...outcomes.map((o) => o.test)];
  // After the scenarios: KEDA labels the HPAs it made for them with its version.
  const result = withHeadline({
    ...base,
    finishedAt: new Date().toISOString(),
    passed: tests.every((t) => t.state === 'passed'),
    counts: count(tests),
    environment: await environment(),
    scenarios,
  });
  return { result, files: await writeReports(options.reportDir, result, tests, reportOptions) };
}

function withHeadline(result: ConformanceResult): ConformanceResult {
  return { ...result, headline: conformanceHeadline(result) };
}

function count(tests: readonly TestResult[]): ConformanceResult['counts'] {
  return {
    tests: tests.length,
    passed: tests.filter((t) => t.state === 'passed').length,
    failed: tests.filter((t) => t.state === 'failed').length,
    skipped: tests.filter((t) => t.state === 'skipped').length,
  };
}

/** Runs the scenarios as mocha tests (programmatic mocha, live reporter) and collects outcomes. */
function runScenarios(
  ctx: SuiteContext,
  reporter: string,
  onMocha: (abort: () => void) => void,
): Promise<Array<{ scenario: Scenario; test: TestResult }>> {
  const SUITE = 'afterlife conformance';
  const mocha = new Mocha({ reporter, color: false });
  const suite = Mocha.Suite.create(mocha.suite, SUITE);
  const byTest = new Map<Mocha.Runnable, Scenario>();
  for (const scenario of SCENARIOS) {
    const test = new Mocha.Test(scenario.title, async () => {
      const rec = record(ctx, scenario.id);
      rec.start = ctx.clock();
      try {
        await scenario.run(ctx, rec);
      } finally {
        rec.end = ctx.clock();
      }
    });
    suite.addTest(test);
    // After addTest: it copies the suite's timeout onto the test.
    test.timeout(scenario.timeoutMs(ctx));
    byTest.set(test, scenario);
  }
  const outcomes = new Map<Scenario, TestResult>();
  const output = (scenario: Scenario): string => {
    const rec = ctx.records.get(scenario.id);
    if (!rec) return '';
    return [...Object.entries(rec.metrics).map(([k, v]) => `${k}: ${v}`), ...rec.notes].join('\n');
  };
  return new Promise((resolve) => {
    const runner = mocha.run(() => {
      resolve(
        SCENARIOS.map((scenario) => ({
          scenario,
          test: outcomes.get(scenario) ?? {
            suite: SUITE,
            title: scenario.title,
            state: 'skipped',
            durationMs: 0,
          },
        })),
      );
    });
    onMocha(() => runner.abort());
    runner.on('pass', (test) => {
      const scenario = byTest.get(test);
      if (scenario) {
        outcomes.set(scenario, {
          suite: SUITE,
          title: test.title,
          state: 'passed',
          durationMs: test.duration ?? 0,
          output: output(scenario),
        });
      }
    });
    runner.on('fail', (test, error: Error) => {
      const scenario = byTest.get(test);
      if (scenario) {
        outcomes.set(scenario, {
          suite: SUITE,
          title: test.title,
          state: 'failed',
          durationMs: test.duration ?? 0,
          error: { message: error.message, ...(error.stack ? { stack: error.stack } : {}) },
          output: output(scenario),
        });
      }
    });
  });
}
