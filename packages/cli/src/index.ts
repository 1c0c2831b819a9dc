export { type DemoOptions, materializeRevision, runDemo } from './demo.ts';
export { type EventOutcome, type LoadTarget, percentile, sendBurst, sendEvent } from './load.ts';
export { type LocalAfterlife, type LocalAfterlifeOptions, type LocalPorts, startLocalAfterlife } from './local.ts';
export {
  type DemoReport,
  type DemoSummary,
  type PhaseSpan,
  renderHtml,
  type Sample,
  summarize,
  writeReport,
} from './report.ts';
