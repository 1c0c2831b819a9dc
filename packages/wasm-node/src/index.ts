export {
  CgiProtocolError,
  type CgiRequest,
  type CgiResponse,
  cgiEnvironment,
  type InvocationResult,
  type InvokeOptions,
  invokeModule,
  parseCgiResponse,
  TRAP_EXIT_CODE,
} from './cgi.ts';
export { loadConfig, WASM_NODE_ENV_VARS, type WasmNodeConfig } from './config.ts';
export {
  type BuildEchoOptions,
  type BuiltModule,
  buildEchoWasm,
  ECHO_ENTRYPOINT,
  ECHO_SOURCE_DIR,
  pushEchoImage,
} from './examples.ts';
export { ModuleStore, type StoredModule } from './module-store.ts';
export { netnsPodNetworks, type PodNetwork, type PodNetworkFactory } from './network.ts';
export {
  type LocalPod,
  NODE_LEASE_NAMESPACE,
  startWasmNode,
  WASM_NODE_LABEL,
  WASM_NODE_TAINT,
  type WasmNode,
  type WasmNodeOptions,
  wasmRuntimeClass,
} from './node-agent.ts';
export {
  checkWasmBinary,
  formatImageReference,
  hasWasmMagic,
  type ImageReference,
  isLoopbackRegistry,
  MEDIA_TYPES,
  NotWasmImageError,
  OciError,
  type PushedImage,
  type PushImageOptions,
  type PushLayer,
  type PushWasmImageOptions,
  parseImageReference,
  pullWasmImage,
  pushImage,
  pushWasmImage,
  type RegistryOptions,
  RUN_OCI_HANDLER_ANNOTATION,
  sha256Digest,
  WASM_VARIANT_ANNOTATION,
  type WasmImage,
} from './oci.ts';
export {
  POD_HOST_ENV_VARS,
  type PodHostSettings,
  podHostSettings,
  type RunningPodHost,
  startPodHost,
} from './pod-host.ts';
export { readTar, type TarEntry, writeTar } from './tar.ts';
