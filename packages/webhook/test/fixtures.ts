import { randomUUID } from 'node:crypto';
import { featuresFromConfigMaps, type KnativeFeatures } from '@afterlife/core';
import fjp from 'fast-json-patch';
import type { JsonPatchOperation } from '../src/admit.ts';
import { DEFAULT_MUTATION_CONFIG } from '../src/config.ts';
import type { ReviewAnswer } from '../src/review.ts';

export const FLAG_ON: KnativeFeatures = featuresFromConfigMaps(
  { 'kubernetes.podspec-runtimeclassname': 'enabled' },
  {},
);
export const FLAG_OFF: KnativeFeatures = featuresFromConfigMaps({}, {});
export const SELECTOR_ROUTE: KnativeFeatures = featuresFromConfigMaps(
  { 'kubernetes.podspec-runtimeclassname': 'disabled' },
  { 'runtime-class-name': 'wasmedge:\n  selector:\n    afterlife.dev/wasm: "true"\n' },
);
export const CONFIG = DEFAULT_MUTATION_CONFIG;

type Json = Record<string, unknown>;

/** A realistic Knative Service as `kubectl apply` sends it. */
export function knativeService(
  options: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    template?: unknown;
  } = {},
): Json {
  const metadata: Json = { name: options.name ?? 'hello', namespace: options.namespace ?? 'demo' };
  if (options.labels !== undefined) metadata.labels = options.labels;
  if (options.annotations !== undefined) metadata.annotations = options.annotations;
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata,
    spec: {
      template:
        options.template === undefined
          ? {
              metadata: { annotations: { 'autoscaling.knative.dev/target': '10' } },
              spec: {
                containerConcurrency: 0,
                containers: [
                  {
                    image: 'ghcr.io/afterlife/hello-wasm:1.0.0',
                    ports: [{ containerPort: 8080 }],
                    env: [{ name: 'TARGET', value: 'Afterlife' }],
                  },
                ],
              },
            }
          : options.template,
    },
  };
}

export function admissionReview(
  object: unknown,
  options: {
    operation?: string;
    kind?: { group: string; version: string; kind: string };
    uid?: string;
    namespace?: string;
    dryRun?: boolean;
    oldObject?: unknown;
  } = {},
): Json {
  const kind = options.kind ?? { group: 'serving.knative.dev', version: 'v1', kind: 'Service' };
  const resource = { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: options.uid ?? randomUUID(),
      kind,
      resource,
      requestKind: kind,
      requestResource: resource,
      name: (object as { metadata?: { name?: string } } | undefined)?.metadata?.name,
      namespace: options.namespace ?? 'demo',
      operation: options.operation ?? 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject: options.oldObject ?? null,
      dryRun: options.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/** The response part of a 200 answer. */
export function responseOf(result: ReviewAnswer) {
  if (!('response' in result.body)) throw new Error(`expected an AdmissionReview, got ${JSON.stringify(result.body)}`);
  return result.body.response;
}

/** Decodes the base64 patch of a response and applies it to a copy of `object`. */
export function applyResult(object: unknown, result: ReviewAnswer): { patched: Json; ops: JsonPatchOperation[] } {
  const response = responseOf(result);
  if (response.patch === undefined) return { patched: structuredClone(object) as Json, ops: [] };
  const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as JsonPatchOperation[];
  const errors = fjp.validate(ops as fjp.Operation[], structuredClone(object));
  if (errors !== undefined) throw errors;
  const patched = fjp.applyPatch(structuredClone(object), ops as fjp.Operation[], true, false).newDocument as Json;
  return { patched, ops };
}
