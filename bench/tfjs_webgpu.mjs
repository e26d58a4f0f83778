// TensorFlow.js on WebGPU in Node, for the peers: Dawn's navigator.gpu from the `webgpu` package (its own
// device, the same adapter as ours), tfjs-core and its WebGPU backend.
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { create, globals } from 'webgpu';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
Object.assign(globalThis, globals);
const nav = globalThis.navigator ?? { userAgent: `Node.js/${process.versions.node}` };
Object.defineProperty(nav, 'gpu', { value: create([]), configurable: true, writable: true });
if (!globalThis.navigator) Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
const require = createRequire(import.meta.url);
export const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-webgpu');
// tfjs-core's Node bundle registers no gradients (the umbrella @tensorflow/tfjs package does that); they
// exist only as its ES modules, whose relative imports omit '.js' and whose package is not marked as ESM.
// A resolve hook fills both in, and the registrations land in tfjs's global registry, which both copies share.
const TFJS_CORE_ESM = `export async function resolve(spec, ctx, next) {
  const inCore = (u) => u.includes('/@tensorflow/tfjs-core/dist/');
  if (ctx.parentURL && inCore(ctx.parentURL) && spec.startsWith('.') && !spec.endsWith('.js')) spec += '.js';
  const r = await next(spec, ctx);
  return inCore(r.url) ? { ...r, format: 'module' } : r;
}`;
register(`data:text/javascript,${encodeURIComponent(TFJS_CORE_ESM)}`);
await import(new URL('dist/register_all_gradients.js', pathToFileURL(require.resolve('@tensorflow/tfjs-core/package.json'))).href);
if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
await tf.ready();
