import { readFile } from 'node:fs/promises';
import { ServerCredentials } from '@grpc/grpc-js';
import type { TlsFiles } from './config.ts';
import { ScalerError } from './errors.ts';

/**
 * gRPC server credentials: plaintext without TLS files; server TLS with cert+key (KEDA trigger
 * `enableTLS: "true"`, optionally `caCert` in the TriggerAuthentication to verify us); mutual TLS
 * when a CA is configured too: clients (KEDA with `tlsClientCert`/`tlsClientKey`) must present a
 * certificate signed by that CA.
 */
export async function serverCredentials(tls: TlsFiles | undefined): Promise<ServerCredentials> {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (cause) {
      throw new ScalerError('TLS_FILE_UNREADABLE', `cannot read the TLS ${what} file ${file}`, { cause });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(tls.certFile, 'certificate'),
    read(tls.keyFile, 'key'),
    tls.caFile === undefined ? Promise.resolve(null) : read(tls.caFile, 'CA'),
  ]);
  return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}
