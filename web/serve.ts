// A static file server on 127.0.0.1 for the browser page (WebGPU needs a secure context: localhost is one).
// Serves the repository root (the page, build/) and the reference dumps under /reference/.
import http from 'node:http';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.png': 'image/png', '.map': 'application/json', '.css': 'text/css' };

export interface Server { url: string; close: () => Promise<void> }

export async function serve(port = 0, referenceDir?: string): Promise<Server> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const refDir = referenceDir ?? process.env.DIT_REFERENCE_DIR ?? path.resolve(root, '../shared/reference');
  const srv = http.createServer(async (req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = url.startsWith('/reference/') ? path.join(refDir, url.slice(11)) : path.join(root, url === '/' ? 'web/index.html' : url);
    const base = url.startsWith('/reference/') ? refDir : root;
    if (!path.resolve(file).startsWith(path.resolve(base))) { res.writeHead(403).end(); return; }
    try {
      const data = await fs.readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(data);
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
  process.stdout.write(`serving on ${s.url}/ (page: ${s.url}/web/index.html) — Ctrl-C to stop\n`);
}
