export { type DemoOptions, runDemo } from './demo.ts';
export { CliError, type CliErrorCode } from './errors.ts';
export {
  type DemoReport,
  type DemoSummary,
  type PhaseSpan,
  renderHtml,
  type Sample,
  summarize,
  writeReport,
} from './report.ts';
