import { applyObjects } from '@afterlife/devcluster';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

/** The parts of a (webhook-mutated) Knative Service template a revision is built from. */
export interface KnativeTemplate {
  metadata?: { annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { runtimeClassName?: string; containers: Array<Record<string, unknown>> };
}

/** The webhook's `autoscaling.knative.dev/scaled-object-override` annotation, parsed. */
export interface ScaledObjectOverride {
  spec: { minReplicaCount?: number; triggers: Array<{ type: string; metadata: Record<string, string> }> };
}

export interface RevisionSpec {
  readonly namespace: string;
  /** Names the Deployment, the Service and the ScaledObject (the gateway routes by it). */
  readonly name: string;
  readonly template: KnativeTemplate;
  readonly override: ScaledObjectOverride;
  /** KEDA cooldown before scaling back to zero. */
  readonly cooldownSeconds: number;
  readonly maxReplicas?: number;
}

/**
 * Creates what Knative's controller plus knative-extensions/autoscaler-keda create for a
 * revision on a real cluster — a Deployment from the mutated template, a Service over it and
 * a KEDA ScaledObject from the override annotation — for the local cluster, which runs neither.
 * KEDA polls every second and the HPA reacts within seconds, so local runs stay short.
 */
export async function materializeRevision(kubeConfig: KubeConfig, revision: RevisionSpec): Promise<void> {
  const { namespace, name, template, override } = revision;
  const labels = { app: name, 'serving.knative.dev/service': name };
  await applyObjects(kubeConfig, [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels, annotations: template.metadata?.annotations ?? {} },
          spec: {
            ...template.spec,
            containers: template.spec.containers.map((container, index) => ({
              name: `user-container-${index}`,
              ...container,
              ports: [{ name: 'http', containerPort: 8080 }],
            })),
          },
        },
      },
    } as KubernetesObject,
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, labels },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    } as KubernetesObject,
    {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name, namespace },
      spec: {
        ...override.spec,
        scaleTargetRef: { name },
        pollingInterval: 1,
        cooldownPeriod: revision.cooldownSeconds,
        maxReplicaCount: revision.maxReplicas ?? 4,
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: {
              scaleDown: {
                stabilizationWindowSeconds: 5,
                policies: [{ type: 'Percent', value: 100, periodSeconds: 5 }],
              },
              scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 4, periodSeconds: 5 }] },
            },
          },
        },
      },
    } as KubernetesObject,
  ]);
  // The Service exists before events flow, so the gateway knows the function.
  await kubeConfig.makeApiClient(CoreV1Api).readNamespacedService({ name, namespace });
}
