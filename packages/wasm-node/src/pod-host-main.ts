import { runPodHostProcess } from './pod-host.ts';

/** Entry of the per-container pod host process (spawned by wasm-node inside the pod's netns). */
await runPodHostProcess();
