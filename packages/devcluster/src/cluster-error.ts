import { AfterlifeError } from '@afterlife/core';

/** Every code the devcluster raises (as connect-es does: one closed union, one error type per kind). */
export type DevclusterErrorCode =
  | 'DEVCLUSTER_ALREADY_RUNNING'
  | 'DEVCLUSTER_NOT_RUNNING'
  | 'DEVCLUSTER_BAD_OPTIONS'
  | 'DEVCLUSTER_BUILD_FAILED'
  | 'DEVCLUSTER_COMPONENT_EXITED'
  | 'DEVCLUSTER_PORT_IN_USE'
  | 'DEVCLUSTER_NOT_READY'
  | 'DEVCLUSTER_HOST_LOCKED'
  | 'DEVCLUSTER_NODE_FAILED'
  | 'DEVCLUSTER_TEARDOWN_FAILED'
  | 'KNATIVE_STATE_DIR_TOO_LONG'
  | 'KUBECONFIG_INVALID'
  | 'KUBE_UNKNOWN_KIND'
  | 'KUBE_REQUEST_FAILED'
  | 'NETNS_FAILED'
  | 'PKI_FAILED'
  | 'TAR_INVALID'
  | 'IMAGE_REF_INVALID'
  | 'NOT_WASM'
  | 'PUSH_FAILED'
  | 'REGISTRY_UNREACHABLE'
  | 'REGISTRY_NOT_ALLOWED';

/** The devcluster's error: a code from DevclusterErrorCode, a message, and the cause. */
export class AfterlifeClusterError extends AfterlifeError<DevclusterErrorCode> {}
