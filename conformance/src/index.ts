export { runConformanceCli } from './cli.ts';
export { componentMain, startComponent } from './components.ts';
export {
  type FunctionUnderTest,
  type ReplicaSample,
  type ScenarioRecord,
  type SuiteContext,
  WaitTimeoutError,
  waitUntil,
} from './context.ts';
export { ConformanceError, type ConformanceErrorCode } from './errors.ts';
export { escapeXml, type TestResult, toJUnitXml } from './junit.ts';
export { type EventOutcome, type LoadTarget, percentile, sendBurst, sendEvent } from './load.ts';
export { type LocalAfterlife, type LocalAfterlifeOptions, type LocalPorts, startLocalAfterlife } from './local.ts';
export {
  formatPreflight,
  PREFLIGHT_CHECKS,
  type PreflightOptions,
  type PreflightResult,
  runPreflight,
} from './preflight.ts';
export { PROFILES, type Profile, withLoad } from './profile.ts';
export {
  type ChartPhase,
  type ChartSeries,
  type ConformanceResult,
  type ReportFiles,
  renderConformanceHtml,
  type ScenarioReport,
  svgChart,
  writeReports,
} from './report.ts';
export {
  type ConformanceOptions,
  type ConformanceRun,
  DEFAULT_WORKLOAD_IMAGE,
  RUN_LABEL,
  startConformance,
} from './runner.ts';
export { LOCAL_NAMESPACE, SCENARIOS, type Scenario } from './scenarios.ts';
