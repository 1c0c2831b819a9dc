export { binaryPath, ensureComponent } from './binaries.ts';
export {
  clusterStateDir,
  DevCluster,
  type DevClusterOptions,
  type DevClusterState,
  destroyFromState,
  httpProbe,
  isClusterRunning,
  KWOK_NODE_ANNOTATION,
  readClusterState,
  reapOrphanClusters,
} from './cluster.ts';
export { AfterlifeClusterError } from './cluster-error.ts';
export { BuildError, ComponentExitedError, PortInUseError, ReadinessTimeoutError } from './errors.ts';
export {
  applyObjects,
  KubeRequestError,
  kubeRequest,
  parseManifests,
  ResourceResolver,
  readManifests,
} from './kube.ts';
export {
  createNetnsHost,
  fenceCidr,
  NetnsError,
  type NetnsHost,
  POD_CIDR,
  POD_GATEWAY_IP,
  reapOrphanNetns,
} from './netns.ts';
export { COMPONENTS, type Component, cacheDir, readVersions, type Versions } from './paths.ts';
export {
  type CertificateRequest,
  createCertificateAuthority,
  createSigningKey,
  issueCertificate,
  type KeyPair,
} from './pki.ts';
export { assertPortFree, freePort } from './ports.ts';
export { ManagedProcess, type ProcessExit, type ProcessSpec, tailFile } from './process.ts';
export { type WaitOptions, waitFor } from './wait.ts';
