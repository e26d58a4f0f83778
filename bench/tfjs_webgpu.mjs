// TensorFlow.js on WebGPU in Node, for the peers: Dawn's navigator.gpu from the `webgpu` package (its own
// device, the same adapter as ours), tfjs-core (whose main entry registers the gradients) and its WebGPU backend.
import { createRequire } from 'node:module';
import { create, globals } from 'webgpu';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
Object.assign(globalThis, globals);
const nav = globalThis.navigator ?? { userAgent: `Node.js/${process.versions.node}` };
Object.defineProperty(nav, 'gpu', { value: create([]), configurable: true, writable: true });
if (!globalThis.navigator) Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
const require = createRequire(import.meta.url);
export const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-webgpu');
if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
await tf.ready();
