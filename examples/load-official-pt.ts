// The official DiT-XL-2-256x256.pt is a bare torch.save state dict under the official names; the tiny
// reference dit_tiny_p2.pt has the same layout. This reads it without Python, builds the model, checks its
// output against the official PyTorch dump, and saves it as safetensors.
// Run: node load-official-pt.js [model.pt] [reference.safetensors]
// The full check of every output the dump holds is the CLI: npx dit verify --reference REF --weights model.pt
import {
  getDevice, closeDevice, readWeights, ditFromWeights, configFromMetadata, officialName, readSafetensors, saveWeights, Tensor,
} from 'dit-webgpu';

const [pt = '../shared/reference/dit_tiny_p2.pt', reference = '../shared/reference/dit_tiny_p2.safetensors'] = process.argv.slice(2);
await getDevice();
const w = await readWeights(pt);                           // zip + pickle: state dicts or {model, ema, opt, args}
const ref = await readSafetensors(reference);
// The config comes from the tensor shapes, except the head count, which is not in them: known for the
// paper's widths (1152 → 16 for XL/2), taken here from the config the reference dump records.
const model = ditFromWeights(w, configFromMetadata(ref.metadata) ?? undefined).eval();
console.log(`${officialName(model.config) ?? 'custom'} DiT: ${model.numParameters().toLocaleString('en-US')} parameters, ${JSON.stringify(model.config)}`);

const ints = (k: string) => Array.from(ref.f32(k), Math.round);
const out = model.forward(Tensor.from(ref.f32('inputs.x'), ref.shape('inputs.x')), ints('inputs.t'), ints('inputs.y'));
const got = await out.data(), want = ref.f32('out.forward');
const err = Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]))) / Math.max(...Array.from(want, Math.abs));
console.log(`forward vs the official output: rel-to-max error ${err.toExponential(2)}`);
await saveWeights('out/dit-from-pt.safetensors', model.config, w.tensors);
await closeDevice();
if (!(err < 1e-4)) throw new Error(`forward differs from the official output (${err})`);
