import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { errorMessage } from '@afterlife/core';
import { WebhookError } from './errors.ts';

export interface TlsMaterial {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** sha256 of key+cert, to notice changes. */
  readonly fingerprint: string;
}

/** Reads a certificate/key pair and checks that they form a usable TLS context. */
export async function loadTlsMaterial(certFile: string, keyFile: string): Promise<TlsMaterial> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  } catch (error) {
    throw new WebhookError('TLS_INVALID', `cannot read TLS files: ${errorMessage(error)}`, { cause: error });
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new WebhookError(
      'TLS_INVALID',
      `TLS certificate ${certFile} and key ${keyFile} are not a valid pair: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  const fingerprint = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { key, cert, fingerprint };
}

/**
 * Polls the certificate and key files (by content, so Kubernetes' atomic symlink swaps of mounted
 * Secrets and cert-manager renewals are both seen) and hands every new valid pair to `onChange`.
 * A half-written pair (new cert, old key) is skipped until both match.
 */
export class TlsFileWatcher {
  readonly #certFile: string;
  readonly #keyFile: string;
  readonly #intervalMs: number;
  readonly #onChange: (material: TlsMaterial) => void;
  readonly #onError: (error: unknown) => void;
  #fingerprint: string;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  #lastError: string | undefined;

  constructor(options: {
    certFile: string;
    keyFile: string;
    intervalMs: number;
    initial: TlsMaterial;
    onChange: (material: TlsMaterial) => void;
    onError: (error: unknown) => void;
  }) {
    this.#certFile = options.certFile;
    this.#keyFile = options.keyFile;
    this.#intervalMs = options.intervalMs;
    this.#onChange = options.onChange;
    this.#onError = options.onError;
    this.#fingerprint = options.initial.fingerprint;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Checks once; returns true when a new pair was loaded. */
  async check(): Promise<boolean> {
    if (this.#checking) return false;
    this.#checking = true;
    try {
      const material = await loadTlsMaterial(this.#certFile, this.#keyFile);
      this.#lastError = undefined;
      if (material.fingerprint === this.#fingerprint) return false;
      this.#fingerprint = material.fingerprint;
      this.#onChange(material);
      return true;
    } catch (error) {
      const message = errorMessage(error);
      if (message !== this.#lastError) this.#onError(error);
      this.#lastError = message;
      return false;
    } finally {
      this.#checking = false;
    }
  }
}
