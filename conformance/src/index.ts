export { type ConformanceCliOptions, runConformanceCli } from './cli.ts';
export { readPreviousRun } from './compare.ts';
export {
  type FunctionUnderTest,
  type ReplicaSample,
  type ScenarioRecord,
  type SuiteContext,
  WaitTimeoutError,
  waitUntil,
} from './context.ts';
export {
  type DetectedVersion,
  describeVersion,
  detectEnvironment,
  detectKedaVersion,
  detectKnativeVersion,
  type EnvironmentOptions,
  type ReportEnvironment,
  releaseTag,
  runnerDescription,
  type VersionFallbacks,
} from './environment.ts';
export { ConformanceError, type ConformanceErrorCode } from './errors.ts';
export { FAULTS, runFaults } from './faults.ts';
export { escapeXml, type TestResult, toJUnitXml } from './junit.ts';
export {
  type EventOutcome,
  isDelivered,
  isRefused,
  isRetryable,
  type LoadTarget,
  percentile,
  sendBurst,
  sendEvent,
  sendWithRetry,
} from './load.ts';
export type { LocalStack, LocalStackLauncher, LocalStackOptions } from './local-stack.ts';
export {
  formatPreflight,
  PREFLIGHT_CHECKS,
  type PreflightOptions,
  type PreflightResult,
  runPreflight,
} from './preflight.ts';
export { PROFILES, type Profile, withLoad } from './profile.ts';
export {
  type Bound,
  type ChartMarker,
  type ChartReference,
  type ChartSeries,
  type ChartSpan,
  type ChartSpec,
  type Check,
  compareFigure,
  type Fact,
  formatBound,
  formatValue,
  type HeadlineFigure,
  headlineLines,
  PALETTE,
  type PreviousRun,
  previousRunLine,
  type ReportDocument,
  type ReportSection,
  renderReport,
  SERIES_STYLES,
  type SeriesStyle,
  svgChart,
  svgWaterfall,
  type Unit,
  type Verdict,
  verdict,
  type WaterfallSpec,
  type WaterfallStep,
} from './render.ts';
export {
  type ConformanceResult,
  conformanceDocument,
  conformanceHeadline,
  environmentFacts,
  eventTotals,
  type ReportFiles,
  renderConformanceHtml,
  type ScenarioReport,
  scenarioCharts,
  spanText,
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
export {
  type ColdStartHop,
  type ColdStartTrace,
  type ColdStartTraceOptions,
  type ColdStartTracer,
  formatTrace,
  type HopId,
  startColdStartTrace,
  traceOffsets,
  traceWaterfall,
} from './trace.ts';
