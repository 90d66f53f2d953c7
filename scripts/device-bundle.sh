#!/usr/bin/env bash
# Packs what `npm run bench:train` needs on a GPU machine that has no Node and no network
# (the workplace's device tool): the bench bundled into one file with tfjs and both backends
# (and its training threads' worker into another),
# tfjs-backend-wasm's .wasm files beside it, the webgpu package's linux-x64 dawn.node, this
# machine's Node binary (both xz-compressed), and the Vulkan loader's Debian packages.
# Output: .dev/ (git-ignored). On the machine, see the README's "GPU figures" for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .dev && mkdir -p .dev/pkg/node_modules/webgpu .dev/gl
# tfjs-backend-webgpu registers itself only if navigator.gpu exists when it loads.
cat > .dev/entry.ts <<'TS'
import { installNavigatorGpu } from '../src/model/backend.ts';
await installNavigatorGpu();
await import('@tensorflow/tfjs-backend-webgpu');
await import('@tensorflow/tfjs-backend-wasm');
await import('../bench/train.ts');
TS
npx --no-install esbuild .dev/entry.ts --bundle --platform=node --format=esm --target=node20 --log-level=warning \
  --outfile=.dev/pkg/train.mjs --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import __p from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __p.dirname(__filename);"
rm .dev/entry.ts
# The training threads' worker (bench:train's wasm run on every core), one file beside the bench.
cat > .dev/worker-entry.ts <<'TS'
await import('@tensorflow/tfjs-backend-wasm');
await import('../src/model/train-worker.ts');
TS
npx --no-install esbuild .dev/worker-entry.ts --bundle --platform=node --format=esm --target=node20 --log-level=warning \
  --outfile=.dev/pkg/train-worker.mjs --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import __p from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __p.dirname(__filename);"
rm .dev/worker-entry.ts
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm .dev/pkg/
# The PyTorch yardstick, run beside the bundle where python3 has torch.
cp bench/torch_train.py .dev/pkg/
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .dev/pkg/node_modules/webgpu/
xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > .dev/dawn.node.xz
xz -T2 -6 -c "$(command -v node)" > .dev/node.xz
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/aq-amd64'
mkdir -p /tmp/aq-amd64/partial
# shellcheck disable=SC2086
apt-get $o update -qq >/dev/null && (cd .dev/gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
du -sh .dev
