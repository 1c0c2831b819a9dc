export {
  AFTERLIFE_NAMESPACE,
  AFTERLIFE_RELEASE,
  type AfterlifeInstall,
  type AfterlifeInstallOptions,
  CHART_COMPONENTS,
  installAfterlife,
  localValues,
} from './afterlife-install.ts';
export {
  APP_IMAGE_NAMES,
  APP_IMAGES,
  type AppImageName,
  type BuildAppImagesOptions,
  type BuiltAppImage,
  buildAppImages,
  pushAppImages,
  type SourceFacts,
  sourceFacts,
  writeAppImageLayouts,
} from './app-images.ts';
export { binaryPath, ensureComponent } from './binaries.ts';
export {
  clusterStateDir,
  DevCluster,
  type DevClusterOptions,
  type DevClusterState,
  destroyFromState,
  isClusterRunning,
  KWOK_NODE_ANNOTATION,
  KWOK_NODE_TAINT,
  readClusterState,
  reapOrphanClusters,
} from './cluster.ts';
export { AfterlifeClusterError } from './cluster-error.ts';
export { BuildError, ComponentExitedError, PortInUseError, ReadinessTimeoutError } from './errors.ts';
export {
  ECHO_WASM_ENTRYPOINT,
  type NodeImages,
  pushNodeImages,
  pushQueueProxyImage,
  pushStaticBinaryImage,
} from './images.ts';
export {
  EVENTING_DEPLOYMENTS,
  installKnativeEventing,
  KNATIVE_EVENTING_NAMESPACE,
  type KnativeEventing,
  type KnativeEventingOptions,
} from './knative-eventing.ts';
export {
  applyObjects,
  KubeRequestError,
  kubeRequest,
  parseManifests,
  ResourceResolver,
  readManifests,
} from './kube.ts';
export {
  LOCAL_GATEWAY,
  type LocalAfterlife,
  type LocalAfterlifeOptions,
  type LocalEndpoints,
  type LocalGatewaySettings,
  localEndpoints,
  startLocalAfterlife,
} from './local-afterlife.ts';
export {
  createNetnsHost,
  fenceCidr,
  NetnsError,
  type NetnsHost,
  POD_CIDR,
  POD_GATEWAY_IP,
  reapOrphanNetns,
  releaseNetnsDir,
} from './netns.ts';
export {
  NODE_POD_CIDR,
  REAL_NODE_LABEL,
  RealNode,
  type RealNodeState,
  WASM_RUNTIME_HANDLER,
  wasmRuntimeClass,
} from './node.ts';
export { ensureNodeTools, type NodeTools } from './node-tools.ts';
export { isLoopbackRegistry, OciError, type PushedImage, pushImage, pushWasmImage } from './oci.ts';
export { COMPONENTS, type Component, cacheDir, readVersions, type Versions } from './paths.ts';
export {
  type CertificateAuthorityOptions,
  type CertificateRequest,
  createCertificateAuthority,
  createSigningKey,
  issueCertificate,
  type KeyPair,
} from './pki.ts';
export { assertPortFree, freePort } from './ports.ts';
export { ManagedProcess, type ProcessExit, type ProcessSpec, tailFile } from './process.ts';
export { CLUSTER_DNS_IP, CLUSTER_DOMAIN, SERVICE_CIDR } from './start/apiserver.ts';
export { type WaitOptions, waitFor } from './wait.ts';
