import { afterEach, describe, expect, it } from 'vitest';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { createGrpcServer, SERVER_WINDOW_BYTES, type GrpcServer, unary } from './server.js';
import { CoordinatorClient, coordinatorService } from './proto.js';
import { callUnary, makeClient } from './client.js';
import { createLogger } from '../util/index.js';

let g: GrpcServer | null = null;
afterEach(async () => g?.close());

describe('createGrpcServer', () => {
  it('advertises its raised HTTP/2 window on the sessions it accepts (guards against grpc-js internals changing)', async () => {
    g = createGrpcServer();
    const log = createLogger('test', { level: 'error' });
    g.server.addService(coordinatorService, { GetStatus: unary(log, 'GetStatus', () => ({ jobs: [], liveTrainers: 0, datasetNodes: 0 })) });
    const address = await g.listen('127.0.0.1:0');
    const client = makeClient(CoordinatorClient, address);
    try {
      await callUnary(client, 'GetStatus', {}, { timeoutMs: 5000 });
      const servers = (g.server as unknown as { http2Servers: Map<Http2Server, { sessions: Set<ServerHttp2Session> }> }).http2Servers;
      const sessions = [...servers.values()].flatMap((s) => [...s.sessions]);
      expect(sessions.length).toBeGreaterThan(0);
      for (const s of sessions) expect(s.state.effectiveLocalWindowSize).toBe(SERVER_WINDOW_BYTES);
    } finally {
      client.close();
    }
  });
});
