import type { IncomingHttpHeaders } from 'node:http';
import { errorMessage } from '@afterlife/core';
import { type CloudEvent, HTTP, ValidationError } from 'cloudevents';
import { GatewayError } from './errors.ts';

/** One CloudEvent, ready to be delivered in binary mode (`ce-*` headers + data as the body). */
export interface EventMessage {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /**
   * Lower-case header names: `ce-*`, `content-type`, and the trace context headers. `ce-*` values
   * are the attribute values themselves (percent-decoded); `encodeHeaderValue` is applied on send.
   */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export type ContentMode = 'binary' | 'structured' | 'batch';

export interface ParsedEvents {
  readonly mode: ContentMode;
  readonly events: readonly EventMessage[];
}

/** The request does not carry valid CloudEvents; `errors` lists every problem found. */
export class EventValidationError extends GatewayError {
  readonly errors: readonly string[];

  constructor(errors: readonly string[]) {
    super('EVENT_INVALID', `invalid CloudEvent: ${errors.join('; ')}`);
    this.errors = errors;
  }
}

const REQUIRED = ['id', 'source', 'specversion', 'type'] as const;
const ATTRIBUTE_NAME = /^[a-z0-9]{1,64}$/;
const SPEC_VERSION = '1.0';
/** HTTP headers that travel with the event besides `ce-*` (W3C trace context). */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'baggage'] as const;
const MIME_STRUCTURED = 'application/cloudevents+json';
const MIME_BATCH = 'application/cloudevents-batch+json';

const HEX = '0123456789ABCDEF';
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Percent-encodes a `ce-*` header value the way the CloudEvents HTTP binding (3.1.3.2) requires:
 * space, `"`, `%` and every character outside printable ASCII (U+0021–U+007E) become `%XX` of
 * their UTF-8 bytes; everything else is sent as it is.
 */
export function encodeHeaderValue(value: string): string {
  let plain = 0;
  while (plain < value.length && sentAsIs(value.charCodeAt(plain))) plain++;
  if (plain === value.length) return value; // the usual case: nothing to encode, no copy
  let out = value.slice(0, plain);
  for (const char of value.slice(plain)) {
    if (sentAsIs(char.charCodeAt(0))) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8')) out += `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** Printable ASCII but `"` and `%` (a UTF-16 code unit; surrogates are never sent as they are). */
function sentAsIs(code: number): boolean {
  return code > 0x20 && code < 0x7f && code !== 0x22 && code !== 0x25;
}

/**
 * Decodes a received `ce-*` header value (3.1.3.2): `%XX` sequences are UTF-8 bytes; characters
 * that were not encoded are taken as they came. Undefined when the bytes are not UTF-8.
 */
export function decodeHeaderValue(raw: string): string | undefined {
  if (!raw.includes('%') && !/[^\x20-\x7e]/.test(raw)) return raw;
  // Node hands header bytes over as latin1 characters: one character per byte.
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const pair = raw.slice(i + 1, i + 3);
    if (raw[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(pair)) {
      bytes.push(Number.parseInt(pair, 16));
      i += 2;
    } else if (raw.charCodeAt(i) <= 0xff) {
      bytes.push(raw.charCodeAt(i));
    } else {
      bytes.push(...Buffer.from(raw[i] ?? '', 'utf8'));
    }
  }
  try {
    return UTF8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) return value.join(', ');
  return value;
}

export function contentModeOf(headers: IncomingHttpHeaders): ContentMode {
  const type = (header(headers, 'content-type') ?? '').toLowerCase();
  if (type.startsWith(MIME_BATCH)) return 'batch';
  if (type.startsWith(MIME_STRUCTURED)) return 'structured';
  return 'binary';
}

/**
 * Reads the CloudEvents in an HTTP request (binary, structured or batch content mode) and turns
 * each into a binary-mode message for delivery, preserving every attribute and extension.
 * Throws `EventValidationError` naming every problem (missing `id`, bad `specversion`, …).
 */
export function parseEvents(headers: IncomingHttpHeaders, body: Buffer): ParsedEvents {
  const mode = contentModeOf(headers);
  const trace: Record<string, string> = {};
  for (const name of TRACE_HEADERS) {
    const value = header(headers, name);
    if (value !== undefined) trace[name] = value;
  }
  if (mode === 'binary') return { mode, events: [fromBinary(headers, body, trace)] };
  const text = body.toString('utf8');
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new EventValidationError([`body is not valid JSON: ${errorMessage(error)}`]);
  }
  if (mode === 'structured') {
    const errors: string[] = [];
    const event = fromStructured(document, '', trace, errors);
    if (event === undefined || errors.length > 0) throw new EventValidationError(errors);
    sdkCheck({ 'content-type': MIME_STRUCTURED }, text, errors, '');
    if (errors.length > 0) throw new EventValidationError(errors);
    return { mode, events: [event] };
  }
  if (!Array.isArray(document)) throw new EventValidationError(['a batch must be a JSON array of events']);
  if (document.length === 0) throw new EventValidationError(['the batch is empty']);
  const errors: string[] = [];
  const events: EventMessage[] = [];
  document.forEach((item, index) => {
    const before = errors.length;
    const event = fromStructured(item, `[${index}] `, trace, errors);
    if (event !== undefined && errors.length === before) events.push(event);
  });
  // The SDK parses a batch from the raw body string; it validates each event's schema.
  if (errors.length === 0) sdkCheck({ 'content-type': MIME_BATCH }, text, errors, '');
  if (errors.length > 0) throw new EventValidationError(errors);
  return { mode, events };
}

function sdkCheck(headers: Record<string, string>, body: string, errors: string[], prefix: string): void {
  try {
    const parsed = HTTP.toEvent({ headers, body });
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) (event as CloudEvent<unknown>).validate();
  } catch (error) {
    if (error instanceof ValidationError && Array.isArray(error.errors) && error.errors.length > 0) {
      for (const item of error.errors) errors.push(`${prefix}${describeSdkError(item)}`);
    } else {
      errors.push(`${prefix}${errorMessage(error)}`);
    }
  }
}

function describeSdkError(item: unknown): string {
  if (typeof item === 'object' && item !== null) {
    const { instancePath, message } = item as { instancePath?: unknown; message?: unknown };
    if (typeof message === 'string') {
      const path = typeof instancePath === 'string' ? instancePath.replace(/^\//, '') : '';
      return path === '' ? message : `${path} ${message}`;
    }
    return JSON.stringify(item);
  }
  return String(item);
}

function checkAttributes(attributes: Record<string, unknown>, prefix: string, errors: string[]): void {
  for (const name of REQUIRED) {
    const value = attributes[name];
    if (value === undefined || value === null || value === '')
      errors.push(`${prefix}missing required attribute "${name}"`);
    else if (typeof value !== 'string') errors.push(`${prefix}attribute "${name}" must be a string`);
  }
  const version = attributes.specversion;
  if (typeof version === 'string' && version !== '' && version !== SPEC_VERSION) {
    errors.push(`${prefix}unsupported specversion "${version}" (only ${SPEC_VERSION})`);
  }
  const time = attributes.time;
  if (time !== undefined && (typeof time !== 'string' || Number.isNaN(Date.parse(time)))) {
    errors.push(`${prefix}attribute "time" must be an RFC 3339 timestamp`);
  }
  for (const name in attributes) {
    const value = attributes[name];
    if (!ATTRIBUTE_NAME.test(name)) {
      errors.push(`${prefix}attribute name "${name}" must be lower-case letters and digits`);
    } else if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      errors.push(`${prefix}attribute "${name}" must be a string, number or boolean`);
    }
  }
}

/**
 * Binary-mode attribute sets the SDK accepted, by shape (see `binaryShape`), so that an event
 * shaped like one accepted before skips building and schema-checking a CloudEvent object — the
 * most expensive step of validation. Bounded: forgotten all at once when full.
 */
const acceptedBinaryShapes = new Set<string>();
const ACCEPTED_SHAPES_KEPT = 1024;

/**
 * What the SDK's verdict on binary-mode attributes (with our checks already passed) depends on:
 * the attribute names, which values are empty, and the values of `source` (a URI reference) and
 * `dataschema` (a URI). The other values are only checked for being non-empty strings, and
 * `time` is normalised by the SDK's parser (ours refused an unparsable one).
 */
function binaryShape(attributes: Readonly<Record<string, string>>): string {
  let names = '';
  for (const name in attributes) names += attributes[name] === '' ? `${name}=,` : `${name},`;
  const source = attributes.source ?? '';
  // Names are [a-z0-9] only and the source is length-prefixed: no two attribute sets share a shape.
  return `${names}\n${source.length}:${source}\n${attributes.dataschema ?? ''}`;
}

function fromBinary(headers: IncomingHttpHeaders, body: Buffer, trace: Record<string, string>): EventMessage {
  const attributes: Record<string, string> = {};
  // `trace` is this request's own object: the one event's headers start from it.
  const out = trace;
  const errors: string[] = [];
  let found = false;
  for (const rawName in headers) {
    const rawValue = headers[rawName];
    if (rawValue === undefined || !isCeHeader(rawName)) continue;
    const name = rawName.toLowerCase();
    const value = decodeHeaderValue(Array.isArray(rawValue) ? rawValue.join(', ') : rawValue);
    if (value === undefined) {
      errors.push(`header ${name} is not valid percent-encoded UTF-8`);
      continue;
    }
    found = true;
    attributes[name.slice(3)] = value;
    out[name] = value;
  }
  const contentType = header(headers, 'content-type');
  if (contentType !== undefined) out['content-type'] = contentType;
  if (errors.length > 0) throw new EventValidationError(errors);
  if (!found) {
    errors.push(
      'no CloudEvent found: send ce-id, ce-source, ce-type and ce-specversion headers (binary mode), ' +
        `or a ${MIME_STRUCTURED} or ${MIME_BATCH} body`,
    );
    throw new EventValidationError(errors);
  }
  checkAttributes(attributes, '', errors);
  if (errors.length === 0) {
    const shape = binaryShape(attributes);
    if (!acceptedBinaryShapes.has(shape)) {
      const forSdk: Record<string, string> = {};
      for (const name in attributes) forSdk[`ce-${name}`] = attributes[name] as string;
      // Attributes only: the data is passed through untouched, whatever its type.
      sdkCheck(forSdk, '', errors, '');
      if (errors.length === 0) {
        if (acceptedBinaryShapes.size >= ACCEPTED_SHAPES_KEPT) acceptedBinaryShapes.clear();
        acceptedBinaryShapes.add(shape);
      }
    }
  }
  if (errors.length > 0) throw new EventValidationError(errors);
  return {
    id: attributes.id as string,
    source: attributes.source as string,
    type: attributes.type as string,
    headers: out,
    body,
  };
}

/** `ce-` in any case, without lower-casing every header name. */
function isCeHeader(name: string): boolean {
  return (
    name.length >= 3 &&
    (name.charCodeAt(0) | 0x20) === 0x63 &&
    (name.charCodeAt(1) | 0x20) === 0x65 &&
    name.charCodeAt(2) === 0x2d
  );
}

function isJsonType(contentType: string): boolean {
  const base = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return base === 'application/json' || base === 'text/json' || base.endsWith('+json');
}

function fromStructured(
  document: unknown,
  prefix: string,
  trace: Record<string, string>,
  errors: string[],
): EventMessage | undefined {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    errors.push(`${prefix}an event must be a JSON object`);
    return undefined;
  }
  const { data, data_base64: dataBase64, ...attributes } = document as Record<string, unknown>;
  checkAttributes(attributes, prefix, errors);
  if (data !== undefined && dataBase64 !== undefined) errors.push(`${prefix}"data" and "data_base64" are exclusive`);
  if (dataBase64 !== undefined && typeof dataBase64 !== 'string')
    errors.push(`${prefix}"data_base64" must be a string`);
  if (errors.length > 0) return undefined;
  const out: Record<string, string> = { ...trace };
  let contentType: string | undefined;
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined) continue;
    if (name === 'datacontenttype') contentType = String(value);
    else out[`ce-${name}`] = String(value);
  }
  let body: Buffer;
  if (typeof dataBase64 === 'string') {
    body = Buffer.from(dataBase64, 'base64');
  } else if (data === undefined) {
    body = Buffer.alloc(0);
  } else {
    contentType ??= 'application/json';
    body = Buffer.from(typeof data === 'string' && !isJsonType(contentType) ? data : JSON.stringify(data), 'utf8');
  }
  if (contentType !== undefined) out['content-type'] = contentType;
  return {
    id: attributes.id as string,
    source: attributes.source as string,
    type: attributes.type as string,
    headers: out,
    body,
  };
}
