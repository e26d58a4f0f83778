// Every folder says what it owns: its README.md has a table whose first column is `file`, each file that
// column names (in backticks) exists, and every source file of the folder is named there.
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Generated or local folders (.gitignore), not the project's own. */
const SKIP = new Set(['node_modules', 'build', 'out']);
const SOURCE = /\.(ts|mjs|cjs|js|py|sh|html)$/;

/** Every folder below the root (relative paths), hidden and generated ones left out. */
function folders(rel = ''): string[] {
  return readdirSync(path.join(ROOT, rel), { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !SKIP.has(e.name))
    .flatMap((e) => [path.join(rel, e.name), ...folders(path.join(rel, e.name))]);
}

/** The names in the first column of a README's `| file | … |` table, or null without one. */
function tableFiles(md: string): string[] | null {
  const lines = md.split('\n');
  const head = lines.findIndex((l) => /^\|\s*file\s*\|/.test(l));
  if (head < 0) return null;
  const names: string[] = [];
  for (let i = head + 2; i < lines.length && lines[i].startsWith('|'); i++) names.push(...[...lines[i].split('|')[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  return names;
}

describe('folder READMEs', () => {
  const all = folders();

  it('reads a table', () => {
    expect(tableFiles('# x/\n\n| file | owns |\n|---|---|\n| `a.ts`, `b.ts` | it |\n| `c.py` | `d.ts` too |\n\nmore')).to.deep.equal(['a.ts', 'b.ts', 'c.py']);
    expect(tableFiles('| folder | owns |\n|---|---|\n| `a/` | it |')).to.equal(null);
    expect(all).to.include.members(['engine', 'kernels', 'nn', 'dit', 'test']);
  });

  for (const dir of all) {
    const sources = readdirSync(path.join(ROOT, dir)).filter((n) => SOURCE.test(n));
    const readme = path.join(ROOT, dir, 'README.md');
    if (!sources.length && !existsSync(readme)) continue;
    it(`${dir}/: a README whose table names every source file, and only files that exist`, () => {
      expect(existsSync(readme), `${dir}/README.md`).to.equal(true);
      const named = tableFiles(readFileSync(readme, 'utf8'));
      expect(named, `${dir}/README.md has no | file | … | table`).to.not.equal(null);
      expect(named!.filter((n) => !existsSync(path.join(ROOT, dir, n))), `${dir}/README.md names files that do not exist`).to.deep.equal([]);
      expect(sources.filter((n) => !named!.includes(n)), `source files ${dir}/README.md does not name`).to.deep.equal([]);
    });
  }
});
