#!/usr/bin/env node
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatPreflight, runConformanceCli, runPreflight } from '@afterlife/conformance';
import { AfterlifeError, createLogger, errorMessage } from '@afterlife/core';
import { KubeConfig } from '@kubernetes/client-node';
import { runDemo } from './demo.ts';

const USAGE = `afterlife — CloudEvents-triggered Wasm functions on Knative, scaled to zero by KEDA

Usage:
  afterlife demo [--short] [--report-dir DIR]   the local end-to-end demo (cluster, components, load, report)
  afterlife conformance [flags]                 the conformance suite (see afterlife conformance --help)
  afterlife doctor [--kubeconfig P] [--context C] [--gateway-admin-url URL] [--scaler-address HOST:PORT]
                                                checks a cluster is ready for Afterlife; says how to fix what is not
  afterlife cluster …                           the local control plane (see afterlife-devcluster --help)
`;

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const print = (line: string) => process.stdout.write(`${line}\n`);
  switch (verb) {
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: { short: { type: 'boolean' }, 'report-dir': { type: 'string' } },
      });
      const short = values.short ?? process.env.AFTERLIFE_DEMO_SHORT === 'true';
      const reportDir = resolve(values['report-dir'] ?? process.env.AFTERLIFE_DEMO_REPORT_DIR ?? 'reports');
      const logger = createLogger('cli', { level: process.env.AFTERLIFE_LOG_LEVEL === 'debug' ? 'debug' : 'warn' });
      const report = await runDemo({ short, reportDir, logger, print });
      return Object.values(report.checks).every(Boolean) ? 0 : 1;
    }
    case 'conformance':
      return runConformanceCli(rest);
    case 'doctor': {
      const { values } = parseArgs({
        args: rest,
        options: {
          kubeconfig: { type: 'string' },
          context: { type: 'string' },
          'gateway-url': { type: 'string' },
          'gateway-admin-url': { type: 'string' },
          'scaler-address': { type: 'string' },
          'runtime-class': { type: 'string' },
        },
      });
      const kubeConfig = new KubeConfig();
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
    case 'cluster': {
      process.argv = [process.argv[0] ?? 'node', 'afterlife-devcluster', ...rest];
      await import('@afterlife/devcluster/cli');
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
      print(USAGE);
      return verb === undefined ? 2 : 0;
    default:
      throw new AfterlifeError('USAGE', `unknown command "${verb}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`afterlife: ${errorMessage(error)}\n`);
    process.exitCode = error instanceof AfterlifeError && error.code === 'USAGE' ? 2 : 1;
  },
);
