import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { errorMessage } from '@afterlife/core';
import { GatewayError } from './errors.ts';

/** Decoders for the `Content-Encoding`s a sender may compress its body with. */
const DECODERS: Readonly<Record<string, () => NodeJS.ReadWriteStream>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

const EMPTY = Buffer.alloc(0);

export type BodyCallback = (error: GatewayError | undefined, body: Buffer) => void;

/**
 * Reads a request body of at most `limitBytes` (after decoding a `gzip`, `deflate` or `br`
 * `Content-Encoding`) and calls `done` exactly once: with the body, or with `TOO_LARGE` (413),
 * `UNSUPPORTED_ENCODING` (415) or `BAD_REQUEST` (400). A body declared larger than the limit is
 * refused before a byte of it is read; what is left of a refused body is discarded (the
 * connection stays usable).
 */
export function readBody(req: IncomingMessage, limitBytes: number, done: BodyCallback): void {
  const tooLarge = () => new GatewayError('TOO_LARGE', `the request body is over the limit of ${limitBytes} bytes`);
  const encoding = req.headers['content-encoding']?.trim().toLowerCase() ?? 'identity';
  let source: Readable = req;
  if (encoding !== 'identity' && encoding !== '') {
    const decoder = DECODERS[encoding];
    if (decoder === undefined) {
      req.resume();
      done(new GatewayError('UNSUPPORTED_ENCODING', `unsupported content encoding "${encoding}"`), EMPTY);
      return;
    }
    source = req.pipe(decoder()) as unknown as Readable;
  } else if (Number(req.headers['content-length'] ?? 0) > limitBytes) {
    req.resume();
    done(tooLarge(), EMPTY);
    return;
  }
  // One chunk is the usual case (small events): no array, no copy.
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  let received = 0;
  let settled = false;
  const finish = (error: GatewayError | undefined, body: Buffer) => {
    if (settled) return;
    settled = true;
    // A held request keeps its IncomingMessage alive for as long as it waits: keep no closures on it.
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('error', onError);
    req.off('error', onError);
    req.off('close', onClose);
    if (error !== undefined) {
      if (source !== req) source.destroy();
      req.resume(); // discard the rest
    }
    done(error, body);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limitBytes) finish(tooLarge(), EMPTY);
    else if (first === undefined) first = chunk;
    else {
      more ??= [first];
      more.push(chunk);
    }
  };
  const onEnd = () => finish(undefined, more === undefined ? (first ?? EMPTY) : Buffer.concat(more, received));
  const onError = (error: Error) =>
    finish(new GatewayError('BAD_REQUEST', `the body could not be read: ${errorMessage(error)}`), EMPTY);
  const onClose = () => {
    if (!req.complete) finish(new GatewayError('BAD_REQUEST', 'the sender aborted the request'), EMPTY);
  };
  source.on('data', onData);
  source.on('end', onEnd);
  source.on('error', onError);
  if (source !== req) req.on('error', onError);
  req.on('close', onClose);
}
