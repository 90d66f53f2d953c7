/**
 * The standard gRPC health service and server reflection on the coordinator and the dataset
 * node, read with plain clients of the standard protocols (as Kubernetes probes, load balancers
 * and grpcurl read them).
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { Harness, healthOf } from './helpers.js';

let h: Harness;
afterEach(async () => h.close());

const Health = grpc.makeClientConstructor(healthService, 'Health');
type HealthClient = grpc.Client & { Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }> };

/** The services a server lists through reflection `version` (v1 or v1alpha). */
async function listServices(address: string, version: 'v1' | 'v1alpha'): Promise<string[]> {
  const root = path.join(path.dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build/proto');
  const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [root], keepCase: true, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: Record<string, { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, { list_services_response?: { service: { name: string }[] } }> } }> } };
  const client = new pkg.grpc.reflection[version]!.ServerReflection(address, grpc.credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const res = new Promise<string[]>((resolve, reject) => {
      call.on('data', (m) => resolve((m.list_services_response?.service ?? []).map((s: { name: string }) => s.name).sort()));
      call.on('error', reject);
    });
    call.write({ list_services: '' });
    const names = await res;
    call.end();
    return names;
  } finally {
    client.close();
  }
}

describe('health and reflection', () => {
  it('answer on the coordinator and the dataset node: SERVING when ready, each service listed, NOT_SERVING while shutting down', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '8', '--validation-samples', '70']);
    const d = await h.dataset(c.address, 'ds-a');
    const data = new Health(d.address, grpc.credentials.createInsecure()) as unknown as HealthClient;
    h.defer(() => data.close());
    expect(await healthOf(c.address)).toBe('SERVING');
    expect(await healthOf(c.address, 'actiquest.v1.Coordinator')).toBe('SERVING');
    expect(await healthOf(c.address, 'actiquest.v1.Jobs')).toBe('SERVING');
    expect(await healthOf(d.address)).toBe('SERVING');
    expect(await healthOf(d.address, 'actiquest.v1.Dataset')).toBe('SERVING');
    await expect(healthOf(d.address, 'actiquest.v1.Coordinator')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    for (const version of ['v1', 'v1alpha'] as const) {
      expect(await listServices(c.address, version)).toEqual(expect.arrayContaining(['actiquest.v1.Coordinator', 'actiquest.v1.Identity', 'actiquest.v1.Jobs']));
      const ds = await listServices(d.address, version);
      expect(ds).toEqual(expect.arrayContaining(['actiquest.v1.Dataset', 'actiquest.v1.Identity']));
      expect(ds).not.toContain('actiquest.v1.Coordinator');
    }
    // A watcher sees the dataset node stop serving as it shuts down.
    const watch = data.Watch({ service: '' });
    const seen: string[] = [];
    const ended = new Promise<void>((resolve) => { watch.on('data', (m: { status: string }) => seen.push(m.status)); watch.on('error', () => resolve()); watch.on('end', () => resolve()); });
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
    await d.close();
    await ended;
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
  }, 60_000);
});
