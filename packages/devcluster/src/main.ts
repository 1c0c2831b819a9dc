#!/usr/bin/env node

import { spawn } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { createLogger, errorMessage, parseFlags, runCli, UsageError } from '@afterlife/core';
import { runImagesCommand } from './app-images.ts';
import { BENCHES, readBenchRun, runBenches } from './bench.ts';
import { ensureComponent } from './binaries.ts';
import {
  clusterStateDir,
  DevCluster,
  type DevClusterState,
  destroyFromState,
  isClusterRunning,
  readClusterState,
  reapOrphanClusters,
} from './cluster.ts';
import { AfterlifeClusterError } from './cluster-error.ts';
import { reapOrphanNetns } from './netns.ts';
import { COMPONENTS, type Component } from './paths.ts';
import { TestTally } from './tally.ts';
import { STATE_DIR_ENV } from './testing.ts';

const USAGE = `afterlife-devcluster — a real local Kubernetes control plane

Usage:
  afterlife-devcluster up [--name N] [--nodes N] [--real-nodes N] [--api-port P] [--no-keda] [--no-knative] [--knative-controllers]
  afterlife-devcluster down [--name N]
  afterlife-devcluster status [--name N]
  afterlife-devcluster env [--name N]          prints export lines for KUBECONFIG etc.
  afterlife-devcluster exec [--name N] -- CMD  starts a cluster, runs CMD against it, always tears down
  afterlife-devcluster build [COMPONENT...]    builds upstream binaries into the cache
  afterlife-devcluster bench [--only C,C] [--compare FILE]
                                               runs every component bench, prints one table of
                                               ratios, writes reports/bench.json
  afterlife-devcluster images [--only N,N] [--push REGISTRY] [--out DIR] [--no-compile] [--source URL]
                                               builds the app images (webhook, gateway, scaler,
                                               autoscaler, conformance) without a container engine
  afterlife-devcluster images pin              re-pins their Debian packages and Node binary
`;

const out = (text: string): void => {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
};

function describe(state: DevClusterState): string {
  const timings = Object.entries(state.timings)
    .map(([phase, seconds]) => `${phase} ${seconds.toFixed(1)}s`)
    .join(', ');
  return [
    `cluster "${state.name}" (Kubernetes ${state.versions.kubernetes}, KEDA ${state.versions.keda}, kwok ${state.versions.kwok})`,
    `  api server:  ${state.apiServer}`,
    `  kubeconfig:  ${state.kubeconfig}`,
    `  registry:    ${state.registry || '(none)'}`,
    `  logs:        ${state.stateDir}/logs`,
    `  start-up:    ${timings}`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const dashDash = argv.indexOf('--');
  const own = dashDash === -1 ? argv : argv.slice(0, dashDash);
  const command = dashDash === -1 ? [] : argv.slice(dashDash + 1);
  const { values, positionals } = parseFlags({
    args: own,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      nodes: { type: 'string' },
      'real-nodes': { type: 'string' },
      'api-port': { type: 'string' },
      'no-keda': { type: 'boolean' },
      'no-knative': { type: 'boolean' },
      'knative-controllers': { type: 'boolean' },
      only: { type: 'string' },
      compare: { type: 'string' },
      push: { type: 'string' },
      out: { type: 'string' },
      'no-compile': { type: 'boolean' },
      source: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb, ...rest] = positionals;
  if (values.help || verb === undefined) {
    out(USAGE);
    return verb === undefined && !values.help ? 2 : 0;
  }
  const logger = createLogger('devcluster', { level: process.env.AFTERLIFE_LOG_LEVEL === 'debug' ? 'debug' : 'info' });
  const name = values.name ?? (verb === 'exec' ? `exec-${process.pid}` : 'default');
  const stateDir = clusterStateDir(name);
  const number = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new UsageError(`--${flag} must be a whole number, got "${text}"`);
    return Number(text);
  };
  const startOptions = {
    name,
    logger,
    keda: !values['no-keda'],
    knative: !values['no-knative'],
    knativeControllers: values['knative-controllers'] ?? false,
    ...(values.nodes === undefined ? {} : { nodes: number('nodes', values.nodes) ?? 2 }),
    ...(values['real-nodes'] === undefined ? {} : { realNodes: number('real-nodes', values['real-nodes']) ?? 1 }),
    ...(values['api-port'] === undefined ? {} : { apiServerPort: number('api-port', values['api-port']) ?? 0 }),
  };

  switch (verb) {
    case 'build': {
      const wanted = rest.length > 0 ? rest : COMPONENTS;
      for (const component of wanted) {
        if (!(COMPONENTS as readonly string[]).includes(component)) {
          throw new UsageError(`unknown component "${component}" (known: ${COMPONENTS.join(', ')})`);
        }
        const started = performance.now();
        const dir = await ensureComponent(component as Component, { onProgress: (line) => logger.info(line) });
        out(`${component}: ${dir} (${((performance.now() - started) / 1000).toFixed(1)}s)`);
      }
      return 0;
    }
    case 'up': {
      await reapOrphanClusters();
      await reapOrphanNetns();
      const started = performance.now();
      const cluster = await DevCluster.start({ ...startOptions, detached: true });
      out(describe(cluster.state));
      out(
        `ready in ${((performance.now() - started) / 1000).toFixed(1)}s; run "afterlife-devcluster env" for KUBECONFIG`,
      );
      return 0;
    }
    case 'down': {
      const state = await readClusterState(stateDir);
      await destroyFromState(stateDir);
      out(state ? `cluster "${name}" stopped` : `no cluster "${name}" was running`);
      return 0;
    }
    case 'status': {
      const state = await readClusterState(stateDir);
      if (!state) {
        out(`no cluster "${name}"`);
        return 1;
      }
      const running = isClusterRunning(state);
      out(`${describe(state)}\n  status:      ${running ? 'running' : 'NOT running (some processes died; see logs)'}`);
      return running ? 0 : 1;
    }
    case 'env': {
      const state = await readClusterState(stateDir);
      if (!state) throw new AfterlifeClusterError('CLUSTER_NOT_RUNNING', `no cluster "${name}"; run "up" first`);
      out(`export KUBECONFIG=${state.kubeconfig}\nexport ${STATE_DIR_ENV}=${state.stateDir}`);
      return 0;
    }
    case 'bench': {
      const only = values.only?.split(',').map((c) => c.trim());
      const known = BENCHES.map((b) => b.component);
      const unknown = only?.filter((c) => !known.includes(c)) ?? [];
      if (unknown.length > 0)
        throw new UsageError(`unknown bench "${unknown.join(', ')}" (known: ${known.join(', ')})`);
      // npm runs scripts from the repository root; a relative --compare is meant from where npm was typed.
      const compare =
        values.compare === undefined
          ? undefined
          : readBenchRun(resolvePath(process.env.INIT_CWD ?? process.cwd(), values.compare));
      const { run } = await runBenches({ ...(only ? { only } : {}), ...(compare ? { compare } : {}) });
      return run.failed.length === 0 ? 0 : 1;
    }
    case 'images':
      return runImagesCommand(
        {
          positionals: rest,
          only: values.only,
          push: values.push,
          out: values.out,
          noCompile: values['no-compile'],
          source: values.source,
        },
        { out, logger },
      );
    case 'exec': {
      if (command.length === 0) throw new UsageError('exec needs a command after --');
      return execWithCluster(startOptions, command, logger);
    }
    default:
      throw new UsageError(`unknown command "${verb}"\n${USAGE}`);
  }
}

async function execWithCluster(
  options: Parameters<typeof DevCluster.start>[0],
  command: string[],
  logger: ReturnType<typeof createLogger>,
): Promise<number> {
  await reapOrphanClusters();
  await reapOrphanNetns();
  const started = performance.now();
  let child: ReturnType<typeof spawn> | undefined;
  let interrupted: NodeJS.Signals | undefined;
  // Handled from before the start: a signal then (the default would exit at once) must not leave
  // the control plane it already started running; the start finishes, then everything stops.
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
    logger.warn({ signal }, 'interrupted; tearing the cluster down');
    child?.kill(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let cluster: DevCluster;
  try {
    cluster = await DevCluster.start(options);
  } catch (error) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw error;
  }
  out(describe(cluster.state));
  out(`cluster ready in ${((performance.now() - started) / 1000).toFixed(1)}s`);
  const tally = new TestTally();
  try {
    if (interrupted !== undefined) return 128 + (interrupted === 'SIGINT' ? 2 : 15);
    const [program, ...args] = command;
    const code = await new Promise<number>((resolve) => {
      child = spawn(program ?? 'true', args, {
        stdio: ['inherit', 'pipe', 'pipe'],
        env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, [STATE_DIR_ENV]: cluster.state.stateDir },
      });
      child.stdout?.on('data', (chunk: Buffer) => {
        process.stdout.write(chunk);
        tally.feed(chunk.toString('utf8'));
      });
      child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
      child.on('error', (error) => {
        logger.error({ err: error }, `could not start ${program}`);
        resolve(127);
      });
      child.on('close', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
    });
    try {
      cluster.assertHealthy();
    } catch (error) {
      logger.error(errorMessage(error));
      return code === 0 ? 1 : code;
    }
    const summary = tally.summary();
    if (summary) out(summary);
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cluster.stop();
  }
}

await runCli(main, { name: 'afterlife-devcluster' });
