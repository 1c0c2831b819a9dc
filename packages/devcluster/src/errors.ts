import { AfterlifeClusterError } from './cluster-error.ts';
/** A component could not be built from the Go module proxy. */
export class BuildError extends AfterlifeClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUILD_FAILED', message, options);
  }
}

/** A control-plane process exited while the cluster needed it; carries its last log lines. */
export class ComponentExitedError extends AfterlifeClusterError {
  readonly component: string;
  readonly lastLogLines: readonly string[];

  constructor(component: string, exit: string, lastLogLines: readonly string[], logFile: string) {
    super(
      'COMPONENT_EXITED',
      `${component} exited early (${exit}); last log lines from ${logFile}:\n  ${lastLogLines.join('\n  ')}`,
    );
    this.component = component;
    this.lastLogLines = lastLogLines;
  }
}

/** A port the cluster wants is already taken by another process. */
export class PortInUseError extends AfterlifeClusterError {
  readonly port: number;

  constructor(port: number, options?: { cause?: unknown }) {
    super('PORT_IN_USE', `port 127.0.0.1:${port} is already in use by another process`, options);
    this.port = port;
  }
}

/** Something did not become ready within its bounded wait. */
export class ReadinessTimeoutError extends AfterlifeClusterError {
  constructor(what: string, timeoutMs: number, lastState: string) {
    super('READINESS_TIMEOUT', `${what} was not ready after ${timeoutMs} ms; last observed: ${lastState}`);
  }
}
