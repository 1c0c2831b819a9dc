import { createServer } from 'node:net';
import { AfterlifeClusterError } from './cluster-error.ts';
import { PortInUseError } from './errors.ts';

/**
 * Ports this process handed out already. The kernel may give a just-closed port to the next
 * bind(0), so two components started side by side could get the same one and the second fail
 * with EADDRINUSE (seen with KEDA's probe and metrics ports).
 */
const handedOut = new Set<number>();

function kernelFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** Asks the kernel for a free port on 127.0.0.1 that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await kernelFreePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new AfterlifeClusterError('PORT_IN_USE', 'no fresh free port on 127.0.0.1 after 100 tries');
}

/** Fails with PortInUseError when a fixed port is already taken. */
export function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, { cause: error }) : error);
    });
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}
