/**
 * The chart and the components agree on configuration.
 *
 * Rule: every env var a rendered Deployment sets is one the component's `loadConfig` reads
 * (its exported *_ENV_VARS list), and every env var in that list is either
 *   (a) set by the chart (derived from values) in at least one of the value sets,
 *   (b) optional: listed in values.schema.json under `<component>.extraEnv.properties` with a
 *       description and the default — and loading the config with that default gives exactly
 *       the config loaded without it (so the documented default is the real one), or
 *   (c) listed under `<component>.extraEnv.x-unsupported` with the reason the chart never sets it.
 * The three groups do not overlap. README.md's "Component settings" is generated from (b) and (c).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Environment, errorMessage } from '@afterlife/core';
import { AUTOSCALER_ENV_VARS, loadConfig as loadAutoscalerConfig } from '../../autoscaler/src/config.ts';
import { GATEWAY_ENV_VARS, loadConfig as loadGatewayConfig } from '../../gateway/src/config.ts';
import { loadConfig as loadScalerConfig, SCALER_ENV_VARS } from '../../scaler/src/config.ts';
import { loadConfig as loadWebhookConfig, WEBHOOK_ENV_VARS } from '../../webhook/src/config.ts';
import { COMPONENTS, optionalSettings, unsupportedSettings } from '../scripts/chart-readme.ts';
import { CHART_DIR, findObject, helmTemplate, type K8sObject, VALUE_SETS } from './helpers.ts';

type Component = (typeof COMPONENTS)[number];

const COMPONENT_CONFIG: Record<Component, { vars: readonly string[]; load: (env: Environment) => unknown }> = {
  webhook: { vars: WEBHOOK_ENV_VARS, load: loadWebhookConfig },
  gateway: { vars: GATEWAY_ENV_VARS, load: loadGatewayConfig },
  scaler: { vars: SCALER_ENV_VARS, load: loadScalerConfig },
  autoscaler: { vars: AUTOSCALER_ENV_VARS, load: loadAutoscalerConfig },
};

/** What a config needs beyond defaults to load at all (the chart always sets these). */
const BASE_ENV: Record<Component, Record<string, string>> = {
  webhook: {},
  gateway: {},
  scaler: { AFTERLIFE_SCALER_GATEWAY_SERVICE: 'afterlife-system/rel-afterlife-gateway' },
  autoscaler: {},
};

interface EnvEntry {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

function containerEnv(objects: readonly K8sObject[], component: Component): EnvEntry[] {
  const deployment = findObject(objects, 'Deployment', `rel-afterlife-${component}`);
  const container = deployment.spec.template.spec.containers.find((c: { name: string }) => c.name === component);
  assert.ok(container, `container ${component}`);
  return container.env as EnvEntry[];
}

/** Env as the pod would see it: downward-API fields get realistic values. */
function resolveEnv(entries: readonly EnvEntry[]): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': 'rel-afterlife-x-5d8f-abcde',
    'metadata.namespace': 'afterlife-system',
  };
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const field = entry.valueFrom?.fieldRef?.fieldPath;
    const value = entry.value ?? (field ? fields[field] : undefined);
    assert.ok(value !== undefined, `${entry.name} has a value the test can resolve`);
    env[entry.name] = value;
  }
  return env;
}

const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));

describe('chart: env vars match the components’ config', function () {
  this.timeout(60_000);
  const rendered = new Map<string, K8sObject[]>();

  before(async () => {
    for (const [name, set] of Object.entries(VALUE_SETS)) rendered.set(name, await helmTemplate(set.values));
  });

  /** Env var names the chart sets for a component across all value sets (without extraEnv). */
  function chartSet(component: Component): Set<string> {
    const names = new Set<string>();
    for (const [setName, objects] of rendered) {
      if (!objects.some((o) => o.kind === 'Deployment' && o.metadata.name === `rel-afterlife-${component}`)) continue;
      const setValues = (VALUE_SETS[setName]?.values ?? {}) as Record<string, { extraEnv?: object } | undefined>;
      const extra = Object.keys(setValues[component]?.extraEnv ?? {});
      for (const entry of containerEnv(objects, component)) if (!extra.includes(entry.name)) names.add(entry.name);
    }
    return names;
  }

  for (const component of COMPONENTS) {
    describe(component, () => {
      const { vars, load } = COMPONENT_CONFIG[component];
      const optional = optionalSettings(schema, component);
      const unsupported = unsupportedSettings(schema, component);

      it('exports exactly the env vars its loadConfig reads', () => {
        const read = new Set<string>();
        const base = BASE_ENV[component];
        const env = new Proxy(base, {
          get(target, key) {
            if (typeof key === 'string') read.add(key);
            return Reflect.get(target, key);
          },
        });
        load(env);
        assert.deepEqual([...read].sort(), [...vars].sort());
      });

      it('sets only env vars the component reads', () => {
        const unknown = [...chartSet(component)].filter((name) => !vars.includes(name));
        assert.deepEqual(unknown, [], `the chart sets env vars ${component} does not read`);
      });

      it('sets, offers as optional or documents as unsupported every env var the component reads', () => {
        const set = chartSet(component);
        const optionalNames = optional.map((o) => o.name);
        const unsupportedNames = unsupported.map((u) => u.name);
        const uncovered = vars.filter(
          (name) => !set.has(name) && !optionalNames.includes(name) && !unsupportedNames.includes(name),
        );
        assert.deepEqual(uncovered, [], `${component} reads env vars the chart neither sets nor documents`);
        for (const name of [...optionalNames, ...unsupportedNames]) {
          assert.ok(vars.includes(name), `${name} is documented but ${component} does not read it`);
          assert.ok(!set.has(name), `${name} is both set by the chart and offered in extraEnv`);
        }
        for (const name of optionalNames) assert.ok(!unsupportedNames.includes(name), name);
      });

      it('documents each optional env var with the default the component really applies', () => {
        const base = load(BASE_ENV[component]);
        for (const setting of optional) {
          assert.ok(setting.description.length > 10, `${setting.name} needs a description`);
          const withDefault = load({ ...BASE_ENV[component], [setting.name]: setting.default });
          assert.deepEqual(withDefault, base, `${setting.name}=${JSON.stringify(setting.default)} is not the default`);
        }
        for (const u of unsupported) assert.ok(u.reason.length > 10, `${u.name} needs a reason`);
      });

      it('renders values the component accepts in every value set', () => {
        for (const [setName, objects] of rendered) {
          if (!objects.some((o) => o.kind === 'Deployment' && o.metadata.name === `rel-afterlife-${component}`))
            continue;
          const env = resolveEnv(containerEnv(objects, component));
          try {
            load(env);
          } catch (error) {
            assert.fail(`${component} rejects the env the chart renders for "${setName}": ${errorMessage(error)}`);
          }
        }
      });

      it('passes every optional env var through extraEnv, once, with a value the component accepts', async () => {
        const extraEnv = Object.fromEntries(optional.map((o) => [o.name, o.default]));
        const objects = await helmTemplate({ [component]: { extraEnv } });
        const entries = containerEnv(objects, component);
        const names = entries.map((e) => e.name);
        assert.equal(new Set(names).size, names.length, `duplicate env vars: ${names.join(', ')}`);
        for (const name of Object.keys(extraEnv)) assert.ok(names.includes(name), name);
        load(resolveEnv(entries));
      });
    });
  }

  it('points the webhook at the scaler and the scaler at the gateway Service', () => {
    const objects = rendered.get('default') ?? [];
    const webhook = resolveEnv(containerEnv(objects, 'webhook'));
    assert.equal(webhook.AFTERLIFE_WEBHOOK_SCALER_ADDRESS, 'rel-afterlife-scaler.afterlife-system.svc:9090');
    const scaler = resolveEnv(containerEnv(objects, 'scaler'));
    assert.equal(scaler.AFTERLIFE_SCALER_GATEWAY_SERVICE, 'afterlife-system/rel-afterlife-gateway');
    const gatewayService = findObject(objects, 'Service', 'rel-afterlife-gateway');
    assert.ok(gatewayService.spec.ports.some((p: { name: string }) => p.name === 'admin'));
  });

  it('points the autoscaler at the scaler Service, leader-elects in the release namespace as the pod', () => {
    const objects = rendered.get('default') ?? [];
    const entries = containerEnv(objects, 'autoscaler');
    const env = resolveEnv(entries);
    const scalerService = findObject(objects, 'Service', 'rel-afterlife-scaler');
    const grpc = scalerService.spec.ports.find((p: { name: string }) => p.name === 'grpc');
    assert.equal(env.AFTERLIFE_AUTOSCALER_SCALER_ADDRESS, `rel-afterlife-scaler.afterlife-system.svc:${grpc.port}`);
    assert.equal(env.AFTERLIFE_AUTOSCALER_LEASE_NAMESPACE, 'afterlife-system');
    assert.equal(env.AFTERLIFE_AUTOSCALER_LEASE_NAME, 'rel-afterlife-autoscaler');
    assert.deepEqual(entries.find((e) => e.name === 'AFTERLIFE_AUTOSCALER_IDENTITY')?.valueFrom, {
      fieldRef: { fieldPath: 'metadata.name' },
    });
    const config = loadAutoscalerConfig(env);
    assert.equal(config.lease.identity, 'rel-afterlife-x-5d8f-abcde', 'each pod campaigns under its own name');
    assert.equal(config.adminPort, 9090);
    assert.deepEqual(config.namespaces, []);
    // The chart's defaults are the component's own.
    assert.deepEqual(config.defaults, loadAutoscalerConfig({}).defaults);
    // The Role for the Lease names exactly the Lease the autoscaler uses.
    const leaseRole = findObject(objects, 'Role', 'rel-afterlife-autoscaler-lease');
    assert.equal(leaseRole.metadata.namespace, config.lease.namespace);
    assert.deepEqual(leaseRole.rules[0].resourceNames, [config.lease.name]);
  });

  it('turns the autoscaler values into the settings the autoscaler loads', () => {
    const objects = rendered.get('tuned') ?? [];
    const config = loadAutoscalerConfig(resolveEnv(containerEnv(objects, 'autoscaler')));
    assert.deepEqual(config.defaults, {
      maxScale: 50,
      target: 2.5,
      metric: 'rate',
      cooldownSeconds: 120,
      pollingIntervalSeconds: 2,
    });
    assert.deepEqual(config.namespaces, ['fn-a', 'fn-b']);
    assert.equal(config.adminPort, 9190);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.workers, 8);
    assert.equal(config.resyncMs, 600_000);
  });

  it('passes webhook.scalingRoute to the webhook', () => {
    const byDefault = loadWebhookConfig(resolveEnv(containerEnv(rendered.get('default') ?? [], 'webhook')));
    assert.equal(byDefault.scalingRoute, 'afterlife');
    const keda = loadWebhookConfig(resolveEnv(containerEnv(rendered.get('autoscalerKeda') ?? [], 'webhook')));
    assert.equal(keda.scalingRoute, 'autoscaler-keda');
  });
});
