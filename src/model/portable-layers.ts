/**
 * The script that lets stock TF.js load a model with the project's own layers (the ViT's
 * position embedding, self-attention and token norm, vit-layers.ts): vit-layers.ts built alone
 * by esbuild into one self-contained script that takes TF.js from the global `tf` and registers
 * the layers with `tf.serialization.registerClass`. It is written beside such a model as
 * `aq-layers.js` and named in its card: load it after TF.js (a `<script>` after tf.min.js in a
 * page; in Node, `globalThis.tf = await import('@tensorflow/tfjs')` then `import('./aq-layers.js')`),
 * then `tf.loadLayersModel` as usual. It holds no training code and no kernels of its own.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

export { PORTABLE_LAYERS_FILE } from './contract.js';

/** True when a model's topology (JSON) uses a layer of the project's own. */
export function usesProjectLayers(topologyJson: string): boolean {
  return /"class_name":\s*"Aq/.test(topologyJson);
}

let cached: Promise<string> | null = null;

/** The script's source (built once a process, or again after a failed build). */
export function portableLayersSource(): Promise<string> {
  cached ??= build({
    entryPoints: [fileURLToPath(new URL('./vit-layers.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    target: 'es2020',
    legalComments: 'none',
    banner: { js: '/* Actiquest custom layers for stock TF.js: load after TF.js (global `tf`); registers AqPositionEmbedding, AqSelfAttention, AqTokenNorm. */' },
    plugins: [{
      name: 'tf-global',
      setup(b) {
        b.onResolve({ filter: /^@tensorflow\/tfjs$/ }, () => ({ path: 'tf', namespace: 'tf-global' }));
        b.onLoad({ filter: /.*/, namespace: 'tf-global' }, () => ({
          contents: 'if (!globalThis.tf) throw new Error("aq-layers.js: load TF.js first (a global tf)"); module.exports = globalThis.tf;',
          loader: 'js',
        }));
      },
    }],
  }).then((r) => r.outputFiles[0]!.text);
  // A failed build is not kept: the next model saved tries again.
  cached.catch(() => {
    cached = null;
  });
  return cached;
}
