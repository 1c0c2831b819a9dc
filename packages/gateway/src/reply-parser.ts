/**
 * An incremental, strict parser of HTTP/1.1 responses (RFC 9112) for the delivery connections:
 * status line and header fields, then the body framed by `Content-Length`, `chunked` or the end
 * of the connection; interim 1xx responses are skipped. Anything it does not understand is a
 * `ReplyFormatError` — the connection is then dropped, never reused.
 */

/** Whole status line + header section, like Node's default `maxHeaderSize`. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** One chunk-size line or trailer section of a chunked body. */
const MAX_LINE_BYTES = 16 * 1024;

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;
/** A field name (an RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Characters a field value may not carry (CTLs but HTAB); obs-text is allowed, as Node does. */
export const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** What a head (or trailer section) may not carry: the same, and CR or LF not paired as a line end. */
const INVALID_HEAD = /[^\t\r\n\x20-\x7e\x80-\xff]|\r(?!\n)|(?<!\r)\n/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;.*)?$/;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/** Fields of which Node keeps the first value and drops repeats (its `matchKnownFields`). */
const FIRST_VALUE_WINS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** The reply is not valid HTTP/1.1 (or uses something this parser refuses). */
export class ReplyFormatError extends Error {
  override readonly name = 'ReplyFormatError';
}

export interface ReplyHead {
  readonly status: number;
  /** Lower-case names; repeated fields joined as Node does (`set-cookie` as an array). */
  readonly headers: Record<string, string | string[]>;
  /** The connection may carry another request once this reply is read. */
  readonly keepAlive: boolean;
  /** `Keep-Alive: timeout=<s>` — how long the server keeps the idle connection, if it says. */
  readonly idleTimeoutSeconds: number | undefined;
}

export interface CompleteReply extends ReplyHead {
  readonly body: Buffer;
  /** Bytes after the reply (the server sent more than one answer): the connection is unusable. */
  readonly trailingBytes: boolean;
}

type Framing = 'length' | 'chunked' | 'close' | 'none';
type ChunkedState = 'size' | 'data' | 'data-end' | 'trailers';

const EMPTY = Buffer.alloc(0);

/** Parses one reply at a time; `reset` before each request. */
export class ReplyParser {
  #head: ReplyHead | undefined;
  /** Head bytes received so far when the head spans several reads. */
  #partialHead: Buffer | undefined;
  #framing: Framing = 'none';
  #remaining = 0;
  #chunked: ChunkedState = 'size';
  /** A chunk-size line or the trailer section, split over reads. */
  #partialLine: Buffer | undefined;
  #body: Buffer[] = [];
  #bodyLength = 0;
  #started = false;

  /** Some byte of the reply arrived. */
  get started(): boolean {
    return this.#started;
  }

  /** The status line and the header fields arrived. */
  get headReceived(): boolean {
    return this.#head !== undefined;
  }

  reset(): void {
    this.#head = undefined;
    this.#partialHead = undefined;
    this.#framing = 'none';
    this.#remaining = 0;
    this.#chunked = 'size';
    this.#partialLine = undefined;
    this.#body = [];
    this.#bodyLength = 0;
    this.#started = false;
  }

  /** Feeds received bytes: the complete reply once it is, else undefined. Throws `ReplyFormatError`. */
  push(chunk: Buffer): CompleteReply | undefined {
    if (chunk.length === 0) return undefined;
    this.#started = true;
    let rest = chunk;
    while (this.#head === undefined) {
      const data = this.#partialHead === undefined ? rest : Buffer.concat([this.#partialHead, rest]);
      const end = data.indexOf(HEAD_END);
      if (end === -1) {
        if (data.length > MAX_HEAD_BYTES) throw new ReplyFormatError(`reply head over ${MAX_HEAD_BYTES} bytes`);
        this.#partialHead = data;
        return undefined;
      }
      if (end > MAX_HEAD_BYTES) throw new ReplyFormatError(`reply head over ${MAX_HEAD_BYTES} bytes`);
      this.#partialHead = undefined;
      rest = data.subarray(end + HEAD_END.length);
      const head = parseHead(data.toString('latin1', 0, end));
      // Interim answers (100 Continue, 103 Early Hints) precede the real one.
      if (head.status < 200) {
        if (head.status === 101) throw new ReplyFormatError('unexpected protocol switch (101)');
        if (rest.length === 0) return undefined;
        continue;
      }
      this.#begin(head);
    }
    return this.#readBody(rest);
  }

  /** The server closed the connection: the reply if that completes it, else undefined (it was cut). */
  end(): CompleteReply | undefined {
    if (this.#head === undefined || this.#framing !== 'close') return undefined;
    return this.#complete(false);
  }

  #begin(head: ReplyHead & { framing: Framing; length: number }): void {
    this.#framing = head.framing;
    this.#remaining = head.length;
    this.#head = {
      status: head.status,
      headers: head.headers,
      keepAlive: head.keepAlive,
      idleTimeoutSeconds: head.idleTimeoutSeconds,
    };
  }

  #readBody(data: Buffer): CompleteReply | undefined {
    switch (this.#framing) {
      case 'none':
        return this.#complete(data.length > 0);
      case 'close':
        this.#keep(data);
        return undefined;
      case 'length': {
        if (data.length < this.#remaining) {
          this.#keep(data);
          this.#remaining -= data.length;
          return undefined;
        }
        this.#keep(data.subarray(0, this.#remaining));
        const trailing = data.length > this.#remaining;
        this.#remaining = 0;
        return this.#complete(trailing);
      }
      case 'chunked':
        return this.#readChunked(data);
    }
  }

  #readChunked(input: Buffer): CompleteReply | undefined {
    let data = input;
    while (data.length > 0) {
      if (this.#chunked === 'data') {
        const take = Math.min(this.#remaining, data.length);
        this.#keep(data.subarray(0, take));
        this.#remaining -= take;
        data = data.subarray(take);
        if (this.#remaining === 0) this.#chunked = 'data-end';
        continue;
      }
      const line = this.#line(data, this.#chunked === 'trailers' ? HEAD_END : CRLF);
      if (line === undefined) return undefined;
      data = line.rest;
      if (this.#chunked === 'data-end') {
        if (line.text !== '') throw new ReplyFormatError('chunk data longer than its size');
        this.#chunked = 'size';
      } else if (this.#chunked === 'size') {
        const size = CHUNK_SIZE.exec(line.text);
        if (size === null) throw new ReplyFormatError(`invalid chunk size line "${line.text.slice(0, 40)}"`);
        this.#remaining = Number.parseInt(size[1] as string, 16);
        this.#chunked = this.#remaining === 0 ? 'trailers' : 'data';
      } else {
        // The trailer section (ignored) ends the body.
        return this.#complete(data.length > 0);
      }
    }
    return undefined;
  }

  /**
   * Reads up to `terminator` across reads. The trailer section is read as one "line" up to its
   * empty line: it starts right after the last chunk's size line, so an empty trailer section is
   * a lone CRLF, found by looking for the terminator in CRLF + data.
   */
  #line(data: Buffer, terminator: Buffer): { text: string; rest: Buffer } | undefined {
    const trailers = terminator === HEAD_END;
    // The usual end of a chunked body: no trailer fields, the final CRLF in the same read.
    if (trailers && this.#partialLine === undefined && data[0] === 0x0d && data[1] === 0x0a) {
      return { text: '', rest: data.subarray(2) };
    }
    const pending = this.#partialLine ?? (trailers ? CRLF : EMPTY);
    const joined = pending.length === 0 ? data : Buffer.concat([pending, data]);
    const end = joined.indexOf(terminator);
    if (end === -1) {
      if (joined.length > MAX_LINE_BYTES) throw new ReplyFormatError('chunked framing line too long');
      this.#partialLine = joined;
      return undefined;
    }
    this.#partialLine = undefined;
    const text = joined.toString('latin1', trailers ? 2 : 0, Math.max(trailers ? 2 : 0, end));
    if (INVALID_HEAD.test(text)) throw new ReplyFormatError('invalid characters in chunked framing');
    return { text, rest: joined.subarray(end + terminator.length) };
  }

  #keep(data: Buffer): void {
    if (data.length === 0) return;
    this.#body.push(data);
    this.#bodyLength += data.length;
  }

  #complete(trailingBytes: boolean): CompleteReply {
    const head = this.#head as ReplyHead;
    const chunks = this.#body;
    const body =
      chunks.length === 1
        ? (chunks[0] as Buffer)
        : chunks.length === 0
          ? EMPTY
          : Buffer.concat(chunks, this.#bodyLength);
    return {
      status: head.status,
      headers: head.headers,
      keepAlive: head.keepAlive && this.#framing !== 'close',
      idleTimeoutSeconds: head.idleTimeoutSeconds,
      body,
      trailingBytes,
    };
  }
}

/**
 * A whole valid header section, from the CRLF ending the status line to the end of the head:
 * field lines of a token name, a colon and a value of visible characters, spaces, tabs or
 * obs-text. Checked in one linear scan (sticky: from `lastIndex`, without copying the head);
 * what exactly is wrong is worked out only for a head that fails it.
 */
const VALID_FIELDS = /(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*$/y;

/** Why a header section failed `VALID_FIELDS`. */
function fieldsProblem(fields: string): string {
  for (const line of fields.split('\r\n')) {
    if (line.startsWith(' ') || line.startsWith('\t')) return 'folded header lines are not allowed';
    const colon = line.indexOf(':');
    if (colon <= 0) return line === '' ? 'invalid header line' : `invalid header line "${line.slice(0, 40)}"`;
    const name = line.slice(0, colon);
    if (!HEADER_NAME.test(name)) return `invalid header name "${name.slice(0, 40)}"`;
    if (INVALID_VALUE.test(line.slice(colon + 1))) return `invalid characters in header ${name}`;
  }
  return 'invalid characters in the reply head';
}

/** The status line and header fields (without the final empty line). */
function parseHead(text: string): ReplyHead & { framing: Framing; length: number } {
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  const statusLine = text.slice(0, lineEnd);
  const status = STATUS_LINE.exec(statusLine);
  if (status === null) throw new ReplyFormatError(`invalid status line "${statusLine.slice(0, 60)}"`);
  VALID_FIELDS.lastIndex = lineEnd;
  if (!VALID_FIELDS.test(text)) throw new ReplyFormatError(fieldsProblem(text.slice(lineEnd + 2)));
  const minor = Number(status[1]);
  const code = Number(status[2]);
  const headers: Record<string, string | string[]> = {};
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection: string | undefined;
  for (let start = lineEnd + 2; start < text.length; start = lineEnd + 2) {
    lineEnd = text.indexOf('\r\n', start);
    if (lineEnd === -1) lineEnd = text.length;
    const colon = text.indexOf(':', start);
    const name = text.slice(start, colon).toLowerCase();
    const value = trimmed(text, colon + 1, lineEnd);
    if (name === 'content-length') {
      // Repeated (or listed) lengths must agree, or the framing is ambiguous (RFC 9112 6.3).
      for (const item of value.split(',')) {
        const length = item.trim();
        if (!/^\d{1,15}$/.test(length)) throw new ReplyFormatError(`invalid content-length "${value.slice(0, 40)}"`);
        if (contentLength !== undefined && contentLength !== length)
          throw new ReplyFormatError('conflicting content-length values');
        contentLength = length;
      }
    } else if (name === 'transfer-encoding') {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
    } else if (name === 'connection') {
      connection = connection === undefined ? value : `${connection}, ${value}`;
    }
    addField(headers, name, value);
  }
  let keepAlive = minor === 1;
  if (connection !== undefined) {
    const tokens = connection
      .toLowerCase()
      .split(',')
      .map((token) => token.trim());
    keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
  }
  let framing: Framing;
  let length = 0;
  if (code === 204 || code === 304 || code < 200) {
    framing = 'none';
  } else if (transferEncoding !== undefined) {
    const codings = transferEncoding
      .toLowerCase()
      .split(',')
      .map((coding) => coding.trim());
    framing = codings[codings.length - 1] === 'chunked' ? 'chunked' : 'close';
    // With both headers the length is ignored, and the connection must not be reused (RFC 9112 6.3).
    if (contentLength !== undefined) keepAlive = false;
  } else if (contentLength !== undefined) {
    length = Number(contentLength);
    framing = length === 0 ? 'none' : 'length';
  } else {
    framing = 'close';
  }
  const keepAliveField = headers['keep-alive'];
  const hint = typeof keepAliveField === 'string' ? /(?:^|,)\s*timeout=(\d+)/i.exec(keepAliveField) : null;
  return {
    status: code,
    headers,
    keepAlive,
    idleTimeoutSeconds: hint === null ? undefined : Number(hint[1]),
    framing,
    length,
  };
}

/** `text[start, end)` without leading and trailing spaces and tabs (a field value's OWS). */
function trimmed(text: string, start: number, end: number): string {
  let from = start;
  let to = end;
  while (from < to && (text.charCodeAt(from) === 0x20 || text.charCodeAt(from) === 0x09)) from++;
  while (to > from && (text.charCodeAt(to - 1) === 0x20 || text.charCodeAt(to - 1) === 0x09)) to--;
  return text.slice(from, to);
}

/** Adds a field the way Node's `IncomingMessage.headers` does. */
function addField(headers: Record<string, string | string[]>, name: string, value: string): void {
  const existing = headers[name];
  if (name === 'set-cookie') {
    if (Array.isArray(existing)) existing.push(value);
    else headers[name] = [value];
  } else if (existing === undefined) {
    headers[name] = value;
  } else if (!FIRST_VALUE_WINS.has(name)) {
    headers[name] = `${existing as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
}
