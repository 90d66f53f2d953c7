/**
 * The tsx loader, for starting the project's TypeScript in another process or thread without a
 * build step (demo roles, benchmark receivers, mask threads).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

/** file:// URL of tsx's ESM loader, for `node --import <url> file.ts`. */
export function tsxLoaderUrl(): string {
  return pathToFileURL(require.resolve('tsx')).href;
}

/** file:// URL of tsx's ESM API (`tsImport`), for worker threads (which ignore --import). */
export function tsxApiUrl(): string {
  // require.resolve picks the CommonJS build; the ESM one sits beside it.
  return pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
}
