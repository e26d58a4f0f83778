// Prints the WebGPU adapter Dawn finds (exit 1 if none). Plain JS so set-up can run it before any build.
import { create, globals } from 'webgpu';
process.env.XDG_RUNTIME_DIR ??= '/tmp';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('[probe] no WebGPU adapter');
  process.exit(1);
}
const i = adapter.info;
console.log(`[probe] adapter: ${i.description || i.vendor} (${i.architecture || 'unknown arch'}); features: ${[...adapter.features].filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of shader-f16/subgroups/timestamp-query'}`);
process.exit(0);
