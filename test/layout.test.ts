/**
 * The direction of dependencies (DESIGN.md): deployment (runtime/, serve/, streams/) never reaches
 * train/ or convert/, even transitively; core/ imports only core/. Read from the sources' own
 * relative imports (static, require() and import() alike).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const IMPORT = /(?:from\s+|import\s+|require\(\s*|import\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base, `${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  throw new Error(`${path.relative(ROOT, from)} imports ${spec}, which does not exist`);
}

/** Every project file reachable from `files`, with the chain that reached it. */
function reachable(files: string[]): Map<string, string[]> {
  const seen = new Map<string, string[]>(files.map((f) => [f, [f]]));
  const todo = [...files];
  while (todo.length) {
    const f = todo.pop()!;
    for (const m of fs.readFileSync(f, 'utf8').matchAll(IMPORT)) {
      const g = resolve(f, m[1]);
      if (!seen.has(g)) { seen.set(g, [...seen.get(f)!, g]); todo.push(g); }
    }
  }
  return seen;
}

const sources = (dir: string): string[] => {
  const d = path.join(ROOT, dir);
  if (!fs.existsSync(d)) return [];
  if (fs.statSync(d).isFile()) return [d];
  return fs.readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(d, f));
};
const stage = (f: string) => path.relative(ROOT, f).split(path.sep)[0];

describe('layout: dependencies point down', () => {
  for (const [from, banned] of [['runtime', ['train', 'convert', 'serve', 'streams', 'fleet', 'cli']], ['serve', ['train', 'convert', 'streams', 'fleet', 'cli']], ['cli/serve.ts', ['train', 'convert']], ['streams', ['train', 'convert', 'cli', 'fleet']], ['fleet', ['train', 'convert', 'cli']], ['report', ['serve', 'streams', 'fleet', 'cli']], ['train', ['convert', 'runtime', 'serve', 'streams', 'fleet', 'cli', 'report']], ['core', ['train', 'convert', 'runtime', 'serve', 'streams', 'fleet', 'cli']]] as const) {
    it(`${from}/ reaches none of ${banned.join(', ')}`, function () {
      const files = sources(from);
      if (files.length === 0) this.skip();
      const bad = [...reachable(files)].filter(([f]) => (banned as readonly string[]).includes(stage(f)));
      assert.deepEqual(bad.map(([, chain]) => chain.map((c) => path.relative(ROOT, c)).join(' -> ')), []);
    });
  }
  it('streams/ uses only the engine of serve/ (runtime/, serve/engine and core/), and serve/ knows video jobs and live feeds only through core/', () => {
    const bad = [...reachable(sources('streams'))].filter(([f]) => stage(f) === 'serve' && !path.relative(ROOT, f).startsWith(path.join('serve', 'engine')));
    assert.deepEqual(bad.map(([, chain]) => chain.map((c) => path.relative(ROOT, c)).join(' -> ')), []);
  });
  it('no dynamic import() of project files: the bin loads TypeScript through tsx\'s CommonJS hook only, and import() of an extensionless .ts path fails there (ERR_MODULE_NOT_FOUND)', () => {
    const files = ['cli', 'core', 'train', 'convert', 'runtime', 'serve', 'streams', 'fleet', 'report'].flatMap(sources);
    const bad = files.filter((f) => /import\(\s*['"]\.{1,2}\//.test(fs.readFileSync(f, 'utf8').replace(/typeof import\(/g, ''))).map((f) => path.relative(ROOT, f));
    assert.deepEqual(bad, [], 'use require() (typed with typeof import(...)) as cli/i2i.ts does');
  });
});
