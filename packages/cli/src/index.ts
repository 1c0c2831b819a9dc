export { DEMO_PROFILES, type DemoOptions, runDemo } from './demo.ts';
export { CliError, type CliErrorCode } from './errors.ts';
export {
  type Capacity,
  capacityOf,
  capacityText,
  type DemoProfile,
  type DemoProfileName,
  type DemoReport,
  type DemoSummary,
  demoCharts,
  demoDocument,
  demoHeadline,
  demoHeadlineFromJson,
  type PhaseSpan,
  renderHtml,
  type Sample,
  summarize,
  writeReport,
} from './report.ts';
