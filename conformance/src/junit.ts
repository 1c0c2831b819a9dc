/** One test outcome, as the suite records it (from mocha's events). */
export interface TestResult {
  /** The suite (describe) title path, e.g. "afterlife conformance". */
  readonly suite: string;
  readonly title: string;
  readonly state: 'passed' | 'failed' | 'skipped';
  readonly durationMs: number;
  readonly error?: { readonly message: string; readonly stack?: string };
  /** Free text shown in <system-out> (measurements, last observed states). */
  readonly output?: string;
}

// XML 1.0 forbids most control characters, even escaped.
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
const INVALID_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

export function escapeXml(text: string): string {
  return text
    .replace(INVALID_XML, '')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

function cdata(text: string): string {
  return `<![CDATA[${text.replace(INVALID_XML, '').replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}

const seconds = (ms: number): string => (Math.max(0, ms) / 1000).toFixed(3);

/**
 * JUnit XML (the Jenkins/GitLab/GitHub-reporter dialect): one <testsuite> per suite title, in
 * first-seen order, inside <testsuites> with totals.
 */
export function toJUnitXml(name: string, results: readonly TestResult[], timestamp = new Date()): string {
  const suites = new Map<string, TestResult[]>();
  for (const result of results) {
    const list = suites.get(result.suite) ?? [];
    list.push(result);
    suites.set(result.suite, list);
  }
  const count = (list: readonly TestResult[], state: TestResult['state']) =>
    list.filter((r) => r.state === state).length;
  const total = (list: readonly TestResult[]) => list.reduce((sum, r) => sum + r.durationMs, 0);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="${escapeXml(name)}" tests="${results.length}" failures="${count(results, 'failed')}" errors="0" skipped="${count(results, 'skipped')}" time="${seconds(total(results))}">`,
  );
  for (const [suite, list] of suites) {
    out.push(
      `  <testsuite name="${escapeXml(suite)}" tests="${list.length}" failures="${count(list, 'failed')}" errors="0" skipped="${count(list, 'skipped')}" time="${seconds(total(list))}" timestamp="${timestamp.toISOString().slice(0, 19)}">`,
    );
    for (const r of list) {
      const open = `    <testcase classname="${escapeXml(suite)}" name="${escapeXml(r.title)}" time="${seconds(r.durationMs)}"`;
      const body: string[] = [];
      if (r.state === 'failed') {
        const message = r.error?.message ?? 'failed';
        body.push(
          `      <failure message="${escapeXml(message.split('\n')[0] ?? message)}" type="AssertionError">${cdata(r.error?.stack ?? message)}</failure>`,
        );
      } else if (r.state === 'skipped') {
        body.push('      <skipped/>');
      }
      if (r.output) body.push(`      <system-out>${cdata(r.output)}</system-out>`);
      out.push(body.length === 0 ? `${open}/>` : `${open}>\n${body.join('\n')}\n    </testcase>`);
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
