import assert from 'node:assert/strict';
import { escapeXml, type TestResult, toJUnitXml } from '../src/junit.ts';

const results: TestResult[] = [
  { suite: 'preflight', title: 'keda', state: 'passed', durationMs: 0, output: 'KEDA 2.20.2' },
  {
    suite: 'preflight',
    title: 'webhook',
    state: 'failed',
    durationMs: 12,
    error: { message: 'no <config> & "quotes"\nsecond line', stack: 'Error: x ]]> y' },
  },
  { suite: 'scenarios', title: 'scale <up>', state: 'passed', durationMs: 1500 },
  { suite: 'scenarios', title: 'later', state: 'skipped', durationMs: 0 },
];

/** Attributes of the first element named `tag` in `xml`. */
function attrs(xml: string, tag: string, nth = 0): Record<string, string> {
  const matches = [...xml.matchAll(new RegExp(`<${tag}\\s([^>]*?)/?>`, 'g'))];
  const found = matches[nth]?.[1] ?? assert.fail(`no <${tag}> #${nth}`);
  return Object.fromEntries([...found.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
}

describe('toJUnitXml', () => {
  const xml = toJUnitXml('suite & co', results, new Date('2026-01-02T03:04:05.678Z'));

  it('writes totals on <testsuites> and per suite, in first-seen order', () => {
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites /);
    assert.deepEqual(attrs(xml, 'testsuites'), {
      name: 'suite &amp; co',
      tests: '4',
      failures: '1',
      errors: '0',
      skipped: '1',
      time: '1.512',
    });
    const first = attrs(xml, 'testsuite', 0);
    const second = attrs(xml, 'testsuite', 1);
    assert.equal(first.name, 'preflight');
    assert.equal(first.tests, '2');
    assert.equal(first.failures, '1');
    assert.equal(first.timestamp, '2026-01-02T03:04:05');
    assert.equal(second.name, 'scenarios');
    assert.equal(second.skipped, '1');
    assert.equal(second.time, '1.500');
  });

  it('escapes names and puts failures, skips and output in the right elements', () => {
    assert.equal(attrs(xml, 'testcase', 2).name, 'scale &lt;up&gt;');
    assert.equal(attrs(xml, 'failure').message, 'no &lt;config&gt; &amp; &quot;quotes&quot;');
    // A "]]>" inside the stack must not end the CDATA section early.
    assert.ok(xml.includes('<![CDATA[Error: x ]]]]><![CDATA[> y]]>'));
    assert.match(xml, /name="later" time="0.000">\n\s+<skipped\/>/);
    assert.ok(xml.includes('<system-out><![CDATA[KEDA 2.20.2]]></system-out>'));
    assert.match(xml, /<testcase classname="scenarios" name="scale &lt;up&gt;" time="1.500"\/>/);
    // Balanced elements.
    assert.equal(xml.match(/<testcase /g)?.length, 4);
    assert.equal((xml.match(/<\/testcase>/g)?.length ?? 0) + (xml.match(/<testcase [^>]*\/>/g)?.length ?? 0), 4);
  });

  it('drops characters XML 1.0 cannot carry', () => {
    assert.equal(escapeXml('a\u0000b\u001bc\td'), 'abc\td');
    const out = toJUnitXml('x', [
      { suite: 's', title: 't\u0007', state: 'failed', durationMs: 1, error: { message: 'bell\u0007' } },
    ]);
    assert.ok(!out.includes('\u0007'));
    assert.match(out, /<failure message="bell" type="AssertionError"><!\[CDATA\[bell\]\]><\/failure>/);
  });

  it('writes an empty but valid document for no results', () => {
    const out = toJUnitXml('none', []);
    assert.match(
      out,
      /<testsuites name="none" tests="0" failures="0" errors="0" skipped="0" time="0.000">\n<\/testsuites>/,
    );
  });
});
