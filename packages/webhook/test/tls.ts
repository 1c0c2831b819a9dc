import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type RequestOptions, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { createCertificateAuthority, type KeyPair } from '@afterlife/devcluster';
import { issueLocalhostServerCert } from '@afterlife/devcluster/testing';

export interface TestPki {
  dir: string;
  caFile: string;
  caPem: string;
  caKeyFile: string;
  cleanup(): Promise<void>;
}

/** A throwaway CA (the devcluster PKI) in a temp dir. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'afterlife-webhook-tls-'));
  const ca = await createCertificateAuthority(dir, 'ca', 'afterlife-webhook-test-ca', { days: 1 });
  return {
    dir,
    caFile: ca.certFile,
    caKeyFile: ca.keyFile,
    caPem: await readFile(ca.certFile, 'utf8'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Issues a serving cert for 127.0.0.1/localhost signed by the test CA; returns the file paths. */
export async function issueServerCert(
  pki: TestPki,
  name: string,
  target: { certFile?: string; keyFile?: string } = {},
): Promise<KeyPair> {
  const { certFile, keyFile } = await issueLocalhostServerCert(
    { certFile: pki.caFile, keyFile: pki.caKeyFile },
    pki.dir,
    name,
  );
  if (target.certFile !== undefined && target.keyFile !== undefined) {
    // Write the new pair over the served files (key first, like a Secret update may land half-way).
    await writeFile(target.keyFile, await readFile(keyFile));
    await writeFile(target.certFile, await readFile(certFile));
    return { certFile: target.certFile, keyFile: target.keyFile };
  }
  return { certFile, keyFile };
}

export interface HttpsReply {
  status: number;
  text: string;
  json: unknown;
  peerCN: string | undefined;
  alpn: string | false | null | undefined;
}

/** One HTTPS request trusting only the test CA (fresh connection each time). */
export function httpsRequest(
  port: number,
  options: { method?: string; path: string; body?: string | Buffer; ca: string; headers?: Record<string, string> },
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const requestOptions: RequestOptions & ConnectionOptions = {
      host: '127.0.0.1',
      port,
      method: options.method ?? 'POST',
      path: options.path,
      ca: options.ca,
      agent: false,
      ALPNProtocols: ['h2', 'http/1.1'],
      headers: { 'content-type': 'application/json', ...options.headers },
      timeout: 10_000,
    };
    const req = request(requestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const socket = res.socket as import('node:tls').TLSSocket;
        const cert = socket.getPeerCertificate?.();
        resolve({
          status: res.statusCode ?? 0,
          text,
          json,
          peerCN: typeof cert?.subject?.CN === 'string' ? cert.subject.CN : undefined,
          alpn: socket.alpnProtocol,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}
