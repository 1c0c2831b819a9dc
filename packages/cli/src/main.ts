#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPreflight, readPreviousRun, runConformanceCli, runPreflight } from '@afterlife/conformance';
import { createLogger, PooledKubeConfig, parseFlags, runCli, UsageError } from '@afterlife/core';
import { runDemo } from './demo.ts';
import { launchLocalStack } from './local-stack.ts';
import { demoHeadlineFromJson } from './report.ts';
import { runStatusCommand } from './status.ts';

const USAGE = `afterlife — CloudEvents-triggered Wasm functions on Knative, scaled to zero by KEDA

Usage:
  afterlife demo [--short | --overload] [--report-dir DIR] [--compare PREVIOUS.json]
                                                the local end-to-end demo (cluster, components, load, report);
                                                --overload pushes past the capacity (503 + Retry-After)
  afterlife conformance [flags]                 the conformance suite (see afterlife conformance --help)
  afterlife doctor [--kubeconfig P] [--context C] [--gateway-admin-url URL] [--scaler-address HOST:PORT]
                                                checks a cluster is ready for Afterlife; says how to fix what is not
  afterlife status [-n NS] [FUNCTION] [-o table|json|yaml] [--watch] [--gateway-admin-url URL]…
                                                the functions on a cluster: routed revisions, replicas,
                                                held and in-flight events; with FUNCTION, why it is or
                                                is not scaling and how to fix it
  afterlife cluster …                           the local control plane (see afterlife-devcluster --help)
Exit code: 0 success, 1 a check or step failed, 2 usage error.
`;

const print = (line: string) => process.stdout.write(`${line}\n`);

async function demo(argv: string[]): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    options: {
      short: { type: 'boolean' },
      overload: { type: 'boolean' },
      'report-dir': { type: 'string' },
      compare: { type: 'string' },
    },
  });
  const short = values.short ?? process.env.AFTERLIFE_DEMO_SHORT === 'true';
  const overload = values.overload ?? false;
  if (short && overload) throw new UsageError('--short and --overload are different profiles: pick one');
  const reportDir = resolve(values['report-dir'] ?? process.env.AFTERLIFE_DEMO_REPORT_DIR ?? 'reports');
  const previous = values.compare ? await readPreviousRun(resolve(values.compare), demoHeadlineFromJson) : undefined;
  const logger = createLogger('cli', { level: process.env.AFTERLIFE_LOG_LEVEL === 'debug' ? 'debug' : 'warn' });
  const report = await runDemo({
    profile: overload ? 'overload' : short ? 'short' : 'full',
    reportDir,
    logger,
    print,
    ...(previous ? { previous } : {}),
  });
  return Object.values(report.checks).every(Boolean) ? 0 : 1;
}

async function doctor(argv: string[]): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'gateway-url': { type: 'string' },
      'gateway-admin-url': { type: 'string' },
      'scaler-address': { type: 'string' },
      'runtime-class': { type: 'string' },
    },
  });
  const kubeConfig = new PooledKubeConfig();
  if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
  else kubeConfig.loadFromDefault();
  if (values.context) kubeConfig.setCurrentContext(values.context);
  const results = await runPreflight(kubeConfig, {
    ...(values['gateway-url'] ? { gatewayUrl: values['gateway-url'] } : {}),
    ...(values['gateway-admin-url'] ? { gatewayAdminUrl: values['gateway-admin-url'] } : {}),
    ...(values['scaler-address'] ? { scalerAddress: values['scaler-address'] } : {}),
    ...(values['runtime-class'] ? { runtimeClassName: values['runtime-class'] } : {}),
  });
  print(formatPreflight(results));
  return results.every((result) => result.ok) ? 0 : 1;
}

async function status(argv: string[]): Promise<number> {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  return runStatusCommand(argv, {
    print,
    signal: controller.signal,
    kubeConfig: (file, context) => {
      const kubeConfig = new PooledKubeConfig();
      if (file) kubeConfig.loadFromFile(file);
      else kubeConfig.loadFromDefault();
      if (context) kubeConfig.setCurrentContext(context);
      return kubeConfig;
    },
  });
}

/**
 * `afterlife cluster …` runs the devcluster command as a child process with the same arguments
 * and terminal, and answers with its exit code; signals sent to this process are passed on.
 */
function cluster(argv: string[]): Promise<number> {
  const main = fileURLToPath(import.meta.resolve('@afterlife/devcluster/cli'));
  return new Promise((done) => {
    const child = spawn(process.execPath, [main, ...argv], { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('error', (error) => {
      process.stderr.write(`afterlife: could not start afterlife-devcluster: ${error.message}\n`);
      done(1);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      done(code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0)));
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'demo':
      return demo(rest);
    case 'conformance':
      return runConformanceCli(rest, { local: launchLocalStack });
    case 'doctor':
      return doctor(rest);
    case 'status':
      return status(rest);
    case 'cluster':
      return cluster(rest);
    case undefined:
    case '--help':
    case '-h':
      print(USAGE);
      return verb === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${verb}"\n${USAGE}`);
  }
}

await runCli(main, { name: 'afterlife' });
