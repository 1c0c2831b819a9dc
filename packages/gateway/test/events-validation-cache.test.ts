import assert from 'node:assert/strict';
import { HTTP } from 'cloudevents';
import { EventValidationError, encodeHeaderValue, parseEvents } from '../src/events.ts';

const base = { 'ce-id': 'e1', 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0' };

/** The errors parseEvents finds for binary headers (none: []). */
function verdict(headers: Record<string, string>): readonly string[] {
  try {
    parseEvents(headers, Buffer.from('x'));
    return [];
  } catch (error) {
    assert.ok(error instanceof EventValidationError);
    return error.errors;
  }
}

/** Counts the SDK's schema checks while `run` runs. */
function sdkChecks(run: () => void): number {
  const original = HTTP.toEvent;
  let calls = 0;
  HTTP.toEvent = ((message) => {
    calls += 1;
    return original(message);
  }) as typeof HTTP.toEvent;
  try {
    run();
  } finally {
    HTTP.toEvent = original;
  }
  return calls;
}

describe('binary-mode validation: the SDK verdict, remembered by shape', () => {
  it('checks an event shaped like an accepted one without the SDK, whatever its id, type, subject, time or extension values', () => {
    const shape = (i: number) => ({
      ...base,
      'ce-id': `id-${i}`,
      'ce-type': `type.${i}`,
      'ce-subject': `subject ${i}`,
      'ce-time': new Date(1_700_000_000_000 + i).toISOString(),
      'ce-cachetestext': `value-${i}`,
    });
    assert.deepEqual(verdict(shape(0)), []);
    const calls = sdkChecks(() => {
      for (let i = 1; i <= 50; i++) assert.deepEqual(verdict(shape(i)), []);
    });
    assert.equal(calls, 0);
  });

  it('still asks the SDK about what its verdict depends on: another source, dataschema, set of names or an empty value', () => {
    assert.deepEqual(verdict({ ...base, 'ce-source': '/accepted-source' }), []);
    // Same names, a source the SDK refuses: not taken for the accepted one.
    assert.deepEqual(verdict({ ...base, 'ce-source': 'http://exa mple.com/%zz' }), [
      'source must match format "uri-reference"',
    ]);
    assert.deepEqual(verdict({ ...base, 'ce-dataschema': 'https://example.com/schema' }), []);
    assert.deepEqual(verdict({ ...base, 'ce-dataschema': 'not a uri' }), ['dataschema must match format "uri"']);
    assert.deepEqual(verdict({ ...base, 'ce-subject': 'x' }), []);
    assert.deepEqual(verdict({ ...base, 'ce-subject': '' }), ['subject must NOT have fewer than 1 characters']);
    assert.deepEqual(verdict({ ...base, 'ce-schemaurl': 'x' }), ['cannot set schemaurl on version 1.0 event']);
    // An accepted shape does not make a refused one pass, in either order.
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(verdict({ ...base, 'ce-datacontenttype': 'text/plain' }), []);
      assert.deepEqual(verdict({ ...base, 'ce-datacontenttype': '' }), [
        'datacontenttype must NOT have fewer than 1 characters',
      ]);
    }
  });

  it('gives the same verdict as asking the SDK every time, over many attribute sets', () => {
    const values = ['', 'x', '/path', 'urn:a:b', 'http://h/p?q#f', '//a:b', 'a b', 'caf%C3%A9', '%zz', 'mailto:x@y'];
    const names = ['source', 'subject', 'dataschema', 'datacontenttype', 'schemaurl', 'ext1'];
    const cases: Record<string, string>[] = [];
    // A name of its own per case: the first pass always asks the SDK…
    for (const name of names)
      for (const value of values) cases.push({ ...base, [`ce-${name}`]: value, [`ce-samecase${cases.length}`]: 'v' });
    let first: (readonly string[])[] = [];
    const firstCalls = sdkChecks(() => {
      first = cases.map(verdict);
    });
    const accepted = first.filter((errors) => errors.length === 0).length;
    assert.ok(accepted > 0 && accepted < cases.length);
    // …the second pass is answered from what it remembered: only refused shapes are asked again.
    const secondCalls = sdkChecks(() => assert.deepEqual(cases.map(verdict), first));
    assert.equal(secondCalls, firstCalls - accepted);
  });
});

describe('encodeHeaderValue', () => {
  it('returns a value needing no escape as it is, and escapes the rest by UTF-8 bytes', () => {
    const plain = 'dev.afterlife.bench-123/~';
    assert.equal(encodeHeaderValue(plain), plain);
    assert.equal(encodeHeaderValue('a "b" 5% ü 😀'), 'a%20%22b%22%205%25%20%C3%BC%20%F0%9F%98%80');
    assert.equal(encodeHeaderValue('tab\there'), 'tab%09here');
  });
});
