import assert from 'node:assert/strict';
import { EventValidationError, parseEvents } from '../src/events.ts';

function invalid(headers: Record<string, string>, body: string | Buffer): readonly string[] {
  try {
    parseEvents(headers, Buffer.isBuffer(body) ? body : Buffer.from(body));
  } catch (error) {
    assert.ok(error instanceof EventValidationError, `expected EventValidationError, got ${String(error)}`);
    return error.errors;
  }
  assert.fail('expected the request to be rejected');
}

describe('parseEvents', () => {
  const attrs = { id: 'e1', source: '/s', type: 't.v1', specversion: '1.0' };

  it('passes binary mode through: every ce-* header, content-type, trace context and the raw body', () => {
    const body = Buffer.from([0, 1, 2, 255]);
    const parsed = parseEvents(
      {
        'ce-id': 'e1',
        'ce-source': '/s',
        'ce-type': 't.v1',
        'ce-specversion': '1.0',
        'ce-myext': 'x',
        'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'content-type': 'application/octet-stream',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'a=b',
        'x-unrelated': 'dropped',
      },
      body,
    );
    assert.equal(parsed.mode, 'binary');
    const [event] = parsed.events;
    assert.ok(event);
    assert.equal(event.id, 'e1');
    assert.deepEqual(event.body, body);
    assert.equal(event.headers['ce-myext'], 'x');
    assert.equal(event.headers['ce-traceparent'], '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(event.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    assert.equal(event.headers.tracestate, 'a=b');
    assert.equal(event.headers['content-type'], 'application/octet-stream');
    assert.equal(event.headers['x-unrelated'], undefined);
  });

  it('decodes percent-encoded ce- header values (HTTP binding 3.1.3.2): the event carries the real values', () => {
    const parsed = parseEvents(
      {
        'ce-id': 'e%201',
        'ce-source': '/s',
        'ce-type': 't.v1',
        'ce-specversion': '1.0',
        'ce-subject': 'caf%C3%A9 %22x%22 100%25',
        'ce-myext': 'no-escapes-here',
      },
      Buffer.alloc(0),
    );
    const [event] = parsed.events;
    assert.equal(event?.id, 'e 1');
    assert.equal(event?.headers['ce-id'], 'e 1');
    assert.equal(event?.headers['ce-subject'], 'café "x" 100%');
    assert.equal(event?.headers['ce-myext'], 'no-escapes-here');
  });

  it('rejects a ce- header whose percent-encoding is not UTF-8', () => {
    const errors = invalid(
      { 'ce-id': '1', 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0', 'ce-subject': 'bad%FF%FE' },
      '',
    );
    assert.match(errors.join(), /ce-subject .*percent-encoded UTF-8/);
  });

  it('turns structured mode into binary: attributes → ce-*, datacontenttype → content-type, data → body', () => {
    const parsed = parseEvents(
      { 'content-type': 'application/cloudevents+json; charset=utf-8' },
      Buffer.from(
        JSON.stringify({
          ...attrs,
          subject: 'sub',
          time: '2026-01-02T03:04:05.678Z',
          datacontenttype: 'application/json',
          myext: 'v',
          count: 3,
          flag: true,
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
          data: { a: [1, 2] },
        }),
      ),
    );
    assert.equal(parsed.mode, 'structured');
    const event = parsed.events[0];
    assert.ok(event);
    assert.deepEqual(event.headers, {
      'ce-id': 'e1',
      'ce-source': '/s',
      'ce-type': 't.v1',
      'ce-specversion': '1.0',
      'ce-subject': 'sub',
      'ce-time': '2026-01-02T03:04:05.678Z',
      'ce-myext': 'v',
      'ce-count': '3',
      'ce-flag': 'true',
      'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'content-type': 'application/json',
    });
    assert.deepEqual(JSON.parse(event.body.toString()), { a: [1, 2] });
  });

  it('decodes data_base64 and keeps text data verbatim for non-JSON content types', () => {
    const binary = parseEvents(
      { 'content-type': 'application/cloudevents+json' },
      Buffer.from(JSON.stringify({ ...attrs, datacontenttype: 'image/png', data_base64: 'AAEC/w==' })),
    ).events[0];
    assert.deepEqual(binary?.body, Buffer.from([0, 1, 2, 255]));
    assert.equal(binary?.headers['content-type'], 'image/png');
    const text = parseEvents(
      { 'content-type': 'application/cloudevents+json' },
      Buffer.from(JSON.stringify({ ...attrs, datacontenttype: 'text/plain', data: 'hi "there"' })),
    ).events[0];
    assert.equal(text?.body.toString(), 'hi "there"');
  });

  it('reads every event of a batch', () => {
    const parsed = parseEvents(
      { 'content-type': 'application/cloudevents-batch+json' },
      Buffer.from(JSON.stringify([attrs, { ...attrs, id: 'e2', data: 1 }])),
    );
    assert.equal(parsed.mode, 'batch');
    assert.deepEqual(
      parsed.events.map((event) => event.id),
      ['e1', 'e2'],
    );
    assert.equal(parsed.events[1]?.body.toString(), '1');
  });

  it('names a missing id in binary, structured and batch mode', () => {
    const binary = invalid({ 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0' }, '');
    assert.ok(
      binary.some((error) => error.includes('"id"')),
      binary.join(),
    );
    const { id: _id, ...noId } = attrs;
    const structured = invalid({ 'content-type': 'application/cloudevents+json' }, JSON.stringify(noId));
    assert.deepEqual(structured, ['missing required attribute "id"']);
    const batch = invalid({ 'content-type': 'application/cloudevents-batch+json' }, JSON.stringify([attrs, noId]));
    assert.deepEqual(batch, ['[1] missing required attribute "id"']);
  });

  it('lists every missing attribute at once', () => {
    const errors = invalid({ 'content-type': 'application/cloudevents+json' }, JSON.stringify({ data: 1 }));
    for (const name of ['id', 'source', 'specversion', 'type']) {
      assert.ok(errors.includes(`missing required attribute "${name}"`), errors.join('; '));
    }
  });

  it('rejects bad values: specversion, time, attribute names, object extensions, data + data_base64', () => {
    const errors = invalid(
      { 'content-type': 'application/cloudevents+json' },
      JSON.stringify({
        ...attrs,
        specversion: '0.1',
        time: 'yesterday',
        BadName: 'x',
        nested: { a: 1 },
        data: 1,
        data_base64: 'AA==',
      }),
    );
    assert.ok(errors.some((error) => error.includes('specversion "0.1"')));
    assert.ok(errors.some((error) => error.includes('"time"')));
    assert.ok(errors.some((error) => error.includes('"BadName"')));
    assert.ok(errors.some((error) => error.includes('"nested"')));
    assert.ok(errors.some((error) => error.includes('exclusive')));
  });

  it('rejects an empty source through the SDK schema', () => {
    const errors = invalid({ 'ce-id': '1', 'ce-source': '', 'ce-type': 't', 'ce-specversion': '1.0' }, '');
    assert.ok(
      errors.some((error) => error.includes('"source"')),
      errors.join(),
    );
  });

  it('rejects requests without any CloudEvent, invalid JSON, empty and non-array batches', () => {
    assert.match(invalid({ 'content-type': 'application/json' }, '{}')[0] ?? '', /no CloudEvent found/);
    assert.match(invalid({ 'content-type': 'application/cloudevents+json' }, '{')[0] ?? '', /not valid JSON/);
    assert.deepEqual(invalid({ 'content-type': 'application/cloudevents-batch+json' }, '[]'), ['the batch is empty']);
    assert.match(invalid({ 'content-type': 'application/cloudevents-batch+json' }, '{}')[0] ?? '', /JSON array/);
    assert.match(invalid({ 'content-type': 'application/cloudevents+json' }, '[1]')[0] ?? '', /JSON object/);
  });
});
