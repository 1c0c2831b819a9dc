import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from '@afterlife/devcluster';
import { useCluster } from '@afterlife/devcluster/testing';
import { CoreV1Api, DiscoveryV1Api, type V1EndpointSlice } from '@kubernetes/client-node';
import type { Gateway } from '../src/server.ts';
import { counts, pendingOf, sendBinary, startTestGateway, waitFor } from './helpers.ts';
import { type NetnsReceiver, NetnsReceivers, RECEIVER_PORT } from './netns-receivers.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

describe('gateway on a real cluster (Services + EndpointSlices)', function () {
  this.timeout(120_000);
  const cluster = useCluster({ namespacePrefix: 'gateway' });
  const receivers = new NetnsReceivers();
  const gateways: Gateway[] = [];
  const processes: ChildProcess[] = [];

  after(async () => {
    for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.allSettled(gateways.map((gateway) => gateway.close()));
    await receivers.close();
  });

  const receiverHost = (name: string, delayMs = 0) => receivers.start(name, delayMs);
  const received = (receiver: NetnsReceiver) => receivers.received(receiver);

  async function createService(name: string, labels: Record<string, string> = {}): Promise<void> {
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespacedService({
      namespace: cluster.namespace,
      body: {
        metadata: { name, labels },
        spec: { ports: [{ name: 'http', port: 80, targetPort: RECEIVER_PORT }] },
      },
    });
  }

  function slice(service: string, name: string, endpoints: { ip: string; ready: boolean }[]): V1EndpointSlice {
    return {
      metadata: { name, labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: RECEIVER_PORT, protocol: 'TCP' }],
      endpoints: endpoints.map(({ ip, ready }) => ({ addresses: [ip], conditions: { ready } })),
    };
  }

  async function gateway(extra: Record<string, string> = {}): Promise<Gateway> {
    const started = await startTestGateway(
      { AFTERLIFE_GATEWAY_NAMESPACES: cluster.namespace, AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '60s', ...extra },
      { kubeConfig: cluster.kubeConfig },
    );
    gateways.push(started);
    return started;
  }

  /** The real gateway process (`src/main.ts`), as its container runs it; resolves once it listens. */
  async function gatewayProcess(id: string, extra: Record<string, string> = {}) {
    const [port, adminPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: {
        ...process.env,
        KUBECONFIG: cluster.kubeconfigPath,
        AFTERLIFE_GATEWAY_PORT: String(port),
        AFTERLIFE_GATEWAY_ADMIN_PORT: String(adminPort),
        AFTERLIFE_GATEWAY_HOST: '127.0.0.1',
        AFTERLIFE_GATEWAY_ID: id,
        AFTERLIFE_GATEWAY_NAMESPACES: cluster.namespace,
        AFTERLIFE_GATEWAY_DISCOVERY: 'service',
        ...extra,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    processes.push(child);
    const output = { log: '' };
    child.stdout?.on('data', (chunk) => {
      output.log += String(chunk);
    });
    await waitFor(() => output.log.includes('gateway listening'), 30_000, 'the gateway process to listen');
    return { child, port, adminPort, output };
  }

  it('holds an event until the EndpointSlice marks a receiver ready, then delivers it and returns the reply', async () => {
    const receiver = await receiverHost('hold');
    await createService('hold');
    const gw = await gateway();
    const admin = await fetch(`http://127.0.0.1:${gw.adminPort}/readyz`);
    assert.equal(admin.status, 200);

    const reply = sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/hold`, 'cluster-1', {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    await waitFor(async () => pendingOf(await counts(gw.adminPort), 'hold') === 1, 10_000, 'pending=1');

    // The endpoint exists but is not ready yet: still held.
    const discovery = cluster.kubeConfig.makeApiClient(DiscoveryV1Api);
    await discovery.createNamespacedEndpointSlice({
      namespace: cluster.namespace,
      body: slice('hold', 'hold-1', [{ ip: receiver.host.ip, ready: false }]),
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(pendingOf(await counts(gw.adminPort), 'hold'), 1);
    assert.deepEqual(received(receiver), []);

    const current = await discovery.readNamespacedEndpointSlice({ name: 'hold-1', namespace: cluster.namespace });
    await discovery.replaceNamespacedEndpointSlice({
      name: 'hold-1',
      namespace: cluster.namespace,
      body: { ...current, endpoints: [{ addresses: [receiver.host.ip], conditions: { ready: true } }] },
    });
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-cluster-1');
    assert.equal(res.headers.get('ce-traceparent'), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const body = (await res.json()) as { receiver: string; id: string };
    assert.deepEqual([body.receiver, body.id], ['hold', 'cluster-1']);
    assert.deepEqual(received(receiver), ['cluster-1']);
    const snap = await counts(gw.adminPort);
    const fn = snap.functions.find((entry) => entry.name === 'hold');
    assert.deepEqual([fn?.pending, fn?.inFlight, fn?.delivered], [0, 0, 1]);

    assert.equal((await sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/nothing`, 'x')).status, 404);
  });

  it('finds functions by label and loses no acknowledged event when a receiver is killed mid-burst', async () => {
    const a = await receiverHost('burst-a', 10);
    const b = await receiverHost('burst-b', 10);
    await createService('burst-svc', { 'afterlife.dev/function': 'burst' });
    await cluster.kubeConfig.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
      namespace: cluster.namespace,
      body: slice('burst-svc', 'burst-1', [
        { ip: a.host.ip, ready: true },
        { ip: b.host.ip, ready: true },
      ]),
    });
    const gw = await gateway({ AFTERLIFE_GATEWAY_DISCOVERY: 'label', AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: '4' });
    await waitFor(() => (gw.endpoints.endpoints({ namespace: cluster.namespace, name: 'burst' }) ?? []).length === 2);

    const total = 300;
    const statuses = new Map<string, number>();
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < total) {
        const id = `burst-${next++}`;
        const res = await sendBinary(gw.eventsPort, `/ns/${cluster.namespace}/fn/burst`, id);
        await res.arrayBuffer();
        statuses.set(id, res.status);
        if (!killed && statuses.size >= 60 && a.child.pid !== undefined) {
          killed = true;
          process.kill(-a.child.pid, 'SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    assert.ok(killed);
    assert.equal(statuses.size, total, 'every sender got an answer');
    const acked = [...statuses].filter(([, status]) => status === 200).map(([id]) => id);
    const errors = [...statuses].filter(([, status]) => status !== 200);
    for (const [, status] of errors) assert.equal(status, 502, 'only in-flight deliveries to the killed receiver fail');
    assert.ok(errors.length <= 4, `${errors.length} errors (at most the replica concurrency)`);
    const seen = new Set([...received(a), ...received(b)]);
    const lost = acked.filter((id) => !seen.has(id));
    assert.deepEqual(lost, [], 'acknowledged events missing at the receivers');
    assert.ok(received(b).length > total / 2, 'the surviving receiver took over');
    const fn = (await counts(gw.adminPort)).functions.find((entry) => entry.name === 'burst');
    assert.equal((fn?.delivered ?? 0) + (fn?.failed ?? 0), total);
    console.log(
      `      burst: ${acked.length} acked, ${errors.length} errors (in flight at the kill), ` +
        `receiver a ${received(a).length}, b ${received(b).length}`,
    );
  });

  it('on SIGTERM stops accepting, still delivers a held event once its endpoint is ready, then exits 0', async () => {
    const receiver = await receiverHost('drain');
    await createService('drain');
    const { child, port, adminPort, output } = await gatewayProcess('gateway-drain', {
      AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '30s',
    });
    const exited = once(child, 'exit');

    const path = `/ns/${cluster.namespace}/fn/drain`;
    const held = sendBinary(port, path, 'drain-1');
    await waitFor(async () => pendingOf(await counts(adminPort), 'drain') === 1, 10_000, 'pending=1');
    child.kill('SIGTERM');
    await waitFor(() => output.log.includes('shutting down'), 10_000, 'shutdown to begin');
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    assert.equal(ready.status, 503);
    await assert.rejects(sendBinary(port, path, 'drain-late'), 'the events port no longer accepts connections');

    await cluster.kubeConfig.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
      namespace: cluster.namespace,
      body: slice('drain', 'drain-1', [{ ip: receiver.host.ip, ready: true }]),
    });
    const res = await held;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ce-id'), 'reply-drain-1');
    const [code] = await exited;
    assert.equal(code, 0);
    assert.deepEqual(received(receiver), ['drain-1']);
    assert.match(output.log, /all events delivered/);
  });

  it('loses no acknowledged event when a gateway replica is killed (SIGKILL) mid-burst', async () => {
    const receiver = await receiverHost('gwkill', 20);
    await createService('gwkill');
    await cluster.kubeConfig.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
      namespace: cluster.namespace,
      body: slice('gwkill', 'gwkill-1', [{ ip: receiver.host.ip, ready: true }]),
    });
    // Two gateway replicas: one real process we SIGKILL, one in-process that keeps serving.
    const { child, port } = await gatewayProcess('gateway-killed');
    const survivor = await gateway();
    const path = `/ns/${cluster.namespace}/fn/gwkill`;

    const total = 200;
    const outcomes = new Map<string, number>(); // id → HTTP status, 0 for a connection error
    let next = 0;
    let killed = false;
    const worker = async (index: number) => {
      while (next < total) {
        const id = `gwkill-${next++}`;
        // Senders alternate between the replicas, as a Service in front of them would spread them.
        const target = index % 2 === 0 && !killed ? port : survivor.eventsPort;
        try {
          const res = await sendBinary(target, path, id);
          await res.arrayBuffer();
          outcomes.set(id, res.status);
        } catch {
          outcomes.set(id, 0);
        }
        if (!killed && outcomes.size >= 60) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, index) => worker(index)));

    assert.ok(killed);
    assert.equal(outcomes.size, total, 'every sender got an answer or a connection error');
    const acked = [...outcomes].filter(([, status]) => status === 200).map(([id]) => id);
    const notAcked = [...outcomes].filter(([, status]) => status !== 200);
    // A sender whose gateway died never got a 200: it knows to send again. Nothing acked is missing.
    for (const [, status] of notAcked) assert.equal(status, 0, "only the killed replica's open requests fail");
    const seen = new Set(received(receiver));
    assert.deepEqual(
      acked.filter((id) => !seen.has(id)),
      [],
      'acknowledged events missing at the receiver',
    );
    assert.ok(acked.length >= total - 8, `${acked.length} acked: only requests open on the killed replica may fail`);
    console.log(
      `      gateway SIGKILL mid-burst: ${acked.length} acked, ${notAcked.length} senders saw the connection drop`,
    );
  });
});
