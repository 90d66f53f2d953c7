#!/usr/bin/env bash
# Packs what `npm run bench:scale` needs on a machine with more cores that has no Node and no
# network access: this machine's Node binary and the files under
# node_modules that a small run of the bench opens (its coordinator, dataset node, simulated
# trainers, model process and threads, learned with strace), every package.json beside them
# (module resolution reads them), esbuild's binary (tsx compiles through it), and the generated
# wire types. The repository's own files travel as they are.
# Output: .dev/scale/ (git-ignored). On the machine, from the repository's root:
#   mkdir -p /tmp/n && xz -dc .dev/scale/node.xz > /tmp/n/node && chmod +x /tmp/n/node &&
#   export PATH=/tmp/n:$PATH && tar -xJf .dev/scale/deps.tar.xz &&
#   node node_modules/tsx/dist/cli.mjs bench/scale.ts --runs 1000x1000000
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "device-bundle-scale: strace is needed (apt-get install strace)" >&2; exit 1; }
rm -rf .dev/scale && mkdir -p .dev/scale
npm run -s gen:proto >/dev/null
trace=.dev/scale/trace
strace -f -qq -e trace=openat,execve -o "$trace" node node_modules/tsx/dist/cli.mjs bench/scale.ts --runs 10x1000000 --rounds 1 >/dev/null
{
  grep -o '"[^"]*node_modules/[^"]*"' "$trace" | tr -d '"' | sed "s|^$PWD/||" | grep '^node_modules/'
  find node_modules -name package.json -not -path '*/test/*'
  find node_modules/@esbuild node_modules/esbuild node_modules/tsx -type f
  find src/wire/generated -type f
} | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done > .dev/scale/files
rm "$trace"
tar -cf - -T .dev/scale/files | xz -T2 -6 > .dev/scale/deps.tar.xz
xz -T2 -6 -c "$(command -v node)" > .dev/scale/node.xz
du -sh .dev/scale/*.xz
