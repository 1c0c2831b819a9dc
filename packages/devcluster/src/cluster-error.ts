import { AfterlifeError } from '@afterlife/core';

/** Every code the devcluster raises (as connect-es does: one closed union, one error type per kind). */
export type DevclusterErrorCode =
  /** `up` found a cluster of that name running already. */
  | 'CLUSTER_ALREADY_RUNNING'
  /** No cluster of that name is running (no state to read). */
  | 'CLUSTER_NOT_RUNNING'
  /** The options passed to `DevCluster.start` do not go together. */
  | 'OPTIONS_INVALID'
  /** An upstream component could not be built from the Go module proxy. */
  | 'BUILD_FAILED'
  /** A control-plane process exited while the cluster needed it. */
  | 'COMPONENT_EXITED'
  /** A port the cluster wants is taken (or no fresh free port was found). */
  | 'PORT_IN_USE'
  /** Something did not become ready within its bounded wait. */
  | 'READINESS_TIMEOUT'
  /** The host ledger stayed locked by another cluster. */
  | 'HOST_LOCKED'
  /** A real node could not be set up (links, addresses, pod subnets). */
  | 'NODE_FAILED'
  /** Host state of a real node could not be released. */
  | 'TEARDOWN_FAILED'
  /** The Knative state directory is too long for a unix socket path. */
  | 'KNATIVE_STATE_DIR_TOO_LONG'
  | 'KUBECONFIG_INVALID'
  | 'KUBE_UNKNOWN_KIND'
  | 'KUBE_REQUEST_FAILED'
  | 'NETNS_FAILED'
  /** A key or certificate could not be made or read. */
  | 'PKI_FAILED'
  | 'TAR_INVALID'
  /** The module to push as a Wasm image is not WebAssembly. */
  | 'NOT_WASM'
  | 'PUSH_FAILED'
  | 'REGISTRY_UNREACHABLE'
  | 'REGISTRY_NOT_ALLOWED'
  /** A pinned input of an app image (a Debian package, Node) could not be had or does not match its pin. */
  | 'IMAGE_INPUT_INVALID'
  /** A package could not be compiled or deployed into its app image. */
  | 'APP_BUILD_FAILED'
  /** `helm install`/`upgrade`/`uninstall` of the Afterlife chart failed. */
  | 'INSTALL_FAILED';

/** The devcluster's error: a code from DevclusterErrorCode, a message, and the cause. */
export class AfterlifeClusterError extends AfterlifeError<DevclusterErrorCode> {}
