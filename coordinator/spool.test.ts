import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { UploadSpool } from './spool.js';
import { SpoolWriteError } from '../src/errors.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-spool-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('the upload spool', () => {
  it('gives back what was appended as words, piece by piece in one buffer, and leaves no file once removed', () => {
    const spool = new UploadSpool(path.join(tempDir(), 'uploads'));
    const words = Uint32Array.from({ length: 10_001 }, (_, i) => (i * 2654435761) >>> 0);
    const bytes = new Uint8Array(words.buffer);
    const file = spool.open('job-1/1/t0');
    // Chunks of odd sizes, as a sender may cut them.
    for (let at = 0; at < bytes.length; at += 4099) file.append(bytes.subarray(at, at + 4099));
    expect(file.bytes).toBe(bytes.length);
    expect(spool.files()).toHaveLength(1);
    const back: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for (const piece of file.words(4096)) {
      buffers.add(piece.buffer);
      back.push(...piece);
    }
    expect(Uint32Array.from(back)).toEqual(words);
    expect(buffers.size).toBe(1);
    file.remove();
    file.remove();
    expect(spool.files()).toEqual([]);
  });

  it('is emptied when opened: files of a process that stopped mid-upload do not stay', () => {
    const dir = path.join(tempDir(), 'uploads');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'left-over.part'), 'x');
    expect(new UploadSpool(dir).files()).toEqual([]);
  });

  it('on a full disk refuses the upload with RESOURCE_EXHAUSTED naming ENOSPC, and removes its file', async () => {
    // A 1 MiB tmpfs in a mount namespace of its own, reached through the holder's /proc root.
    const dir = tempDir();
    const holder: ChildProcess = spawn('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$0" && echo mounted && exec sleep 100000', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(() => holder.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`unshare/mount failed (exit ${code})`)));
    });
    const spool = new UploadSpool(`/proc/${holder.pid}/root${dir}/uploads`);
    const file = spool.open('t0');
    let err: unknown = null;
    try {
      for (let i = 0; i < 4; i++) file.append(new Uint8Array(512 << 10));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpoolWriteError);
    expect((err as SpoolWriteError).kind).toBe('resource-exhausted');
    expect((err as Error).message).toMatch(/^the coordinator could not store an upload on its disk \(ENOSPC: /);
    file.remove();
    expect(spool.files()).toEqual([]);
  });
});
