// Every variant of every kernel family in kernels/registry.ts on this adapter: its outputs against the float64
// reference, and its gradients (autograd on the GPU) against float64 finite differences of the reference.
// Variants or problems the adapter cannot run are reported with the reason, and a variant that runs nothing
// here is skipped, never passed.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeAdapter } from '../engine/device.js';
import { FAMILIES, checkVariant, prepare, runForced } from '../kernels/registry.js';
import { device } from './helpers.js';

describe('kernel registry: every variant against float64', function () {
  /** Per family: the variants that ran, and those that did not with the reason. */
  const tally = new Map<string, { ran: string[]; notRun: string[] }>();

  before(device);

  after(async () => {
    if (!tally.size) return;
    const lines = [...tally].map(([name, t]) => `  ${name}: ${t.ran.length} of ${t.ran.length + t.notRun.length} variants ran${t.notRun.length ? ` (not run: ${t.notRun.join('; ')})` : ''}`);
    console.log(`\n  kernel variants on ${describeAdapter((await device()).adapter)}:\n${lines.join('\n')}\n`);
  });

  for (const f of FAMILIES) {
    describe(`${f.name} (${f.file})`, () => {
      for (const v of Object.keys(f.variants)) {
        it(`${v}: outputs match float64, gradients match finite differences`, async function () {
          const { ran, notRun, failures } = await checkVariant(f, v);
          const t = tally.get(f.name) ?? { ran: [], notRun: [] };
          tally.set(f.name, t);
          if (ran) t.ran.push(v);
          else t.notRun.push(`${v} — ${[...new Set(notRun.map((n) => n.slice(n.indexOf(': ') + 2)))].join(', ')}`);
          if (notRun.length) console.log(`        not run on this adapter: ${notRun.join('; ')}`);
          expect(failures, `\n${failures.join('\n')}`).to.deep.equal([]);
          if (!ran) this.skip();
        });
      }
    });
  }

  it('the automatic choice of each family with alternatives is a registered variant that gives the same bits', async () => {
    for (const f of FAMILIES.filter((x) => x.choose)) {
      const variants = Object.keys(f.variants);
      for (const p of f.problems(variants[0])) {
        if (variants.every((v) => f.unsupported(v, p))) continue;
        const live = f.choose!(p);
        expect(variants, `${f.name} ${f.describe(p)}`).to.include(live);
        expect(f.unsupported(live, p), `${f.name} ${f.describe(p)}: the live variant ${live}`).to.equal(null);
        const x = prepare(f, p);
        const auto = await runForced(f, p, undefined, x), forced = await runForced(f, p, live, x);
        x.dispose();
        auto.forEach((a, k) => expect(Buffer.from(a.buffer).equals(Buffer.from(forced[k].buffer)), `${f.name} ${f.describe(p)}: automatic vs ${live}`).to.equal(true));
      }
    }
  });

  it('every kernel file with WGSL is registered', () => {
    const dir = fileURLToPath(new URL('../../kernels/', import.meta.url));
    const withWgsl = readdirSync(dir).filter((n) => n.endsWith('.ts') && /@compute/.test(readFileSync(dir + n, 'utf8'))).map((n) => `kernels/${n}`);
    expect(withWgsl.length).to.be.greaterThan(10);
    expect(withWgsl.filter((file) => !FAMILIES.some((f) => f.file === file))).to.deep.equal([]);
  });
});
