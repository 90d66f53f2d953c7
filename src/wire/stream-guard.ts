/**
 * Bounds what peers can make a server hold before a handler sees a byte. grpc-js gathers each
 * gRPC message in memory until its last byte arrives, and keeps reading a stream while a
 * message is incomplete: a peer that opens many streams and leaves a large message one byte
 * short on each holds streams x message size (1,000 x 4 MiB = 4 GB on one connection). The guard
 * reads the same HTTP/2 data as grpc-js, follows each stream's gRPC framing (a 5-byte prefix
 * with the message length), and counts the bytes of incomplete messages per connection and in
 * all. A stream is reset with ENHANCE_YOUR_CALM (clients see RESOURCE_EXHAUSTED) when its
 * connection holds more than {@link StreamLimits.connectionBytes}, when all connections together
 * hold more than {@link StreamLimits.totalBytes} (the stream with the most on the connection
 * that holds the most goes first), or when one of its messages takes longer than
 * {@link StreamLimits.messageMs} to arrive (a byte now and then keeps a stream open forever
 * otherwise). Complete messages are grpc-js's: it stops reading a stream until its handler
 * takes the message, so HTTP/2 flow control bounds them.
 */
import http2, { type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Logger } from '../util/index.js';

/** Limits on incomplete messages. */
export interface StreamLimits {
  /** Bytes of incomplete messages one connection may hold. */
  connectionBytes: number;
  /** Bytes of incomplete messages all connections together may hold. */
  totalBytes: number;
  /** Longest one message may take from its first byte to its last. */
  messageMs: number;
}

/** Defaults: 4 full 4 MiB chunks a connection, 64 a server, and 60 s a message (70 KB/s). */
export const DEFAULT_STREAM_LIMITS: StreamLimits = { connectionBytes: 16 << 20, totalBytes: 256 << 20, messageMs: 60_000 };

/** Why a stream was reset, for the log and the counters. */
export type ResetReason = 'connection-bytes' | 'total-bytes' | 'slow-message';

interface Conn {
  held: number;
  readonly streams: Set<Tracked>;
  readonly peer: string;
  /** Resets on this connection by reason: the first of each is logged, the count when it closes. */
  readonly resets: Map<ResetReason, number>;
}

interface Tracked {
  readonly stream: ServerHttp2Stream;
  readonly conn: Conn;
  readonly path: string;
  /** Bytes of the prefix read so far (0 to 5), and the prefix itself. */
  prefixRead: number;
  readonly prefix: Buffer;
  /** Body bytes still to come of the current message. */
  remaining: number;
  /** Bytes of the current message received (prefix included). */
  held: number;
  timer: NodeJS.Timeout | null;
}

/** Counts incomplete messages on every session of a server and resets streams over the limits. */
export class StreamGuard {
  private held = 0;
  private readonly conns = new Set<Conn>();

  constructor(private readonly limits: StreamLimits = DEFAULT_STREAM_LIMITS, private readonly log?: Logger) {}

  /** Watches a new HTTP/2 session's streams. */
  attach(session: Http2Session): void {
    const conn: Conn = { held: 0, streams: new Set(), peer: `${session.socket?.remoteAddress ?? '?'}:${session.socket?.remotePort ?? '?'}`, resets: new Map() };
    this.conns.add(conn);
    session.on('stream', (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      // Listeners run in order: grpc-js has its own by now and has paused the stream, which a
      // second 'data' listener does not resume.
      const t: Tracked = { stream, conn, path: String(headers[':path'] ?? ''), prefixRead: 0, prefix: Buffer.alloc(5), remaining: 0, held: 0, timer: null };
      conn.streams.add(t);
      stream.on('data', (data: Buffer) => this.onData(t, data));
      stream.once('close', () => this.forget(t));
    });
    session.once('close', () => {
      this.conns.delete(conn);
      if (conn.resets.size) this.log?.warn('connection closed after stream resets', { peer: conn.peer, resets: Object.fromEntries(conn.resets) });
    });
  }

  private onData(t: Tracked, data: Buffer): void {
    if (!t.conn.streams.has(t)) return;
    let at = 0;
    let added = 0;
    while (at < data.length) {
      if (t.prefixRead < 5) {
        if (t.prefixRead === 0 && t.held === 0) this.startMessage(t);
        const n = Math.min(5 - t.prefixRead, data.length - at);
        data.copy(t.prefix, t.prefixRead, at, at + n);
        t.prefixRead += n;
        at += n;
        t.held += n;
        added += n;
        if (t.prefixRead === 5) {
          t.remaining = t.prefix.readUInt32BE(1);
          if (t.remaining === 0) added -= this.endMessage(t);
        }
        continue;
      }
      const n = Math.min(t.remaining, data.length - at);
      t.remaining -= n;
      at += n;
      t.held += n;
      added += n;
      if (t.remaining === 0) added -= this.endMessage(t);
    }
    // What the chunk leaves incomplete is what counts.
    t.conn.held += added;
    this.held += added;
    if (t.conn.held > this.limits.connectionBytes) this.reset(t, 'connection-bytes');
    else if (this.held > this.limits.totalBytes) this.reset(this.largest(), 'total-bytes');
  }

  private startMessage(t: Tracked): void {
    t.timer = setTimeout(() => this.reset(t, 'slow-message'), this.limits.messageMs);
    t.timer.unref();
  }

  /** Ends the current message; returns the bytes it held before this chunk's part of it. */
  private endMessage(t: Tracked): number {
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    const held = t.held;
    t.held = 0;
    t.prefixRead = 0;
    t.remaining = 0;
    return held;
  }

  /** The stream holding the most, on the connection holding the most. */
  private largest(): Tracked {
    let conn: Conn | null = null;
    for (const c of this.conns) if (!conn || c.held > conn.held) conn = c;
    let best: Tracked | null = null;
    for (const s of conn!.streams) if (!best || s.held > best.held) best = s;
    return best!;
  }

  private reset(t: Tracked, reason: ResetReason): void {
    if (!t.conn.streams.has(t)) return;
    const before = t.conn.resets.get(reason) ?? 0;
    t.conn.resets.set(reason, before + 1);
    if (before === 0) this.log?.warn('stream reset', {
      reason, peer: t.conn.peer, path: t.path, heldBytes: t.held, connectionBytes: t.conn.held, totalBytes: this.held,
      limit: reason === 'connection-bytes' ? this.limits.connectionBytes : reason === 'total-bytes' ? this.limits.totalBytes : this.limits.messageMs,
    });
    this.forget(t);
    if (!t.stream.destroyed) t.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  private forget(t: Tracked): void {
    if (!t.conn.streams.delete(t)) return;
    if (t.timer) clearTimeout(t.timer);
    t.conn.held -= t.held;
    this.held -= t.held;
    t.held = 0;
  }
}
