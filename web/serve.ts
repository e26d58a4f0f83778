// The browser page's server (`npm run web`): bundles web/main.ts with esbuild, then serves on 127.0.0.1
// (WebGPU needs a secure context; localhost is one) exactly these, and nothing else of the repository:
//   /  (or /index.html)   the page
//   /bundle.js[.map]      its bundle
//   /out/…                what the commands wrote (trained models)
//   /weights/…            the shipped small weights (the VAE, the judge, the DiT sampled on opening)
//   /reference/…          the official PyTorch dumps (../shared/reference)
// to GET and HEAD only; no dotfile, and nothing a symbolic link leads to outside those roots.
import http from 'node:http';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.png': 'image/png', '.map': 'application/json', '.css': 'text/css' };

export interface Server { url: string; close: () => Promise<void> }

/** The repository root (this file runs from build/web/). */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUNDLE_DIR = path.join(ROOT, 'build', 'web', 'bundle');

/** Bundles the page's sources (web/main.ts and what it imports, TypeScript directly) for browsers. */
export async function bundlePage(): Promise<string> {
  const esbuild = await import('esbuild');
  const outfile = path.join(BUNDLE_DIR, 'bundle.js');
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'web', 'main.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
    outfile, sourcemap: true, logLevel: 'warning',
  });
  return outfile;
}

/**
 * The file a request path names, or null when it names nothing served: a path under an allowed root after
 * resolving `.` and `..` (a `..` segment anywhere is refused outright, and so is any segment starting with
 * a dot: .git, .env, .cache), then after following symbolic links, which must leave it inside the root (a
 * link in out/ or the reference folder to /etc is not a way out). The real path is what is returned.
 */
export async function resolveServed(urlPath: string, roots: Record<string, string>): Promise<string | null> {
  if (urlPath === '/' || urlPath === '/index.html') return path.join(ROOT, 'web', 'index.html');
  if (urlPath === '/bundle.js' || urlPath === '/bundle.js.map') return path.join(BUNDLE_DIR, urlPath.slice(1));
  const segments = urlPath.split(/[/\\]/);
  if (segments.some((s) => s.startsWith('.')) || urlPath.includes('\0')) return null;
  const m = /^\/([^/]+)\/(.+)$/.exec(urlPath);
  const base = m ? roots[m[1]] : undefined;
  if (!m || !base) return null;
  try {
    const root = await fs.realpath(base);
    const file = await fs.realpath(path.resolve(root, m[2]));
    return file.startsWith(root + path.sep) ? file : null;
  } catch {
    return null; // missing: nothing to serve
  }
}

/** The methods answered; anything else (POST, DELETE, PUT, …) gets 405. */
const METHODS = ['GET', 'HEAD'];

export async function serve(port = 0, referenceDir?: string): Promise<Server> {
  await bundlePage();
  const roots: Record<string, string> = {
    out: path.join(ROOT, 'out'), weights: path.join(ROOT, 'weights'),
    reference: referenceDir ?? process.env.DIT_REFERENCE_DIR ?? path.resolve(ROOT, '../shared/reference'),
  };
  const srv = http.createServer(async (req, res) => {
    if (!METHODS.includes(req.method ?? '')) { res.writeHead(405, { allow: METHODS.join(', ') }).end('method not allowed'); return; }
    let urlPath: string;
    try { urlPath = decodeURIComponent((req.url ?? '/').split('?')[0]); } catch { res.writeHead(400).end('bad request'); return; }
    const file = await resolveServed(urlPath, roots);
    if (!file) { res.writeHead(404).end('not found'); return; }
    try {
      const data = await fs.readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': data.byteLength });
      res.end(req.method === 'HEAD' ? undefined : data);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  const addr = srv.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const s = await serve(Number(process.env.PORT ?? 8080));
  process.stdout.write(`serving the page on ${s.url}/ — Ctrl-C to stop\n`);
}
