// Generates the TypeScript types of the wire contract (proto/actiquest/v1) into
// src/wire/generated/ with proto-loader-gen-types, which ships with @grpc/proto-loader, using the
// loader's options of src/wire/proto.ts. The output is not committed: `npm test`, `npm run lint`
// and `npm run build` make it first. Its relative imports get the `.js` the NodeNext module
// resolution wants.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'src/wire/generated');
const protos = fs.readdirSync(path.join(root, 'proto/actiquest/v1')).filter((f) => f.endsWith('.proto')).sort().map((f) => `actiquest/v1/${f}`);
const bin = path.join(path.dirname(createRequire(import.meta.url).resolve('@grpc/proto-loader/package.json')), 'build/bin/proto-loader-gen-types.js');

fs.rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [bin, '--keepCase=false', '--longs=Number', '--enums=String', '--defaults', '--oneofs', '--grpcLib=@grpc/grpc-js',
  `--outDir=${out}`, '-I', 'proto', '--', ...protos], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
let files = 0;
for (const file of fs.readdirSync(out, { recursive: true, encoding: 'utf8' })) {
  if (!file.endsWith('.ts')) continue;
  const p = path.join(out, file);
  fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(/(from '\.{1,2}\/[^']*?)(?<!\.js)';/g, "$1.js';"));
  files++;
}
console.log(`gen-proto: ${files} files in ${path.relative(root, out)}`);
