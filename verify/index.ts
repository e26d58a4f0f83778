// Parity checks of a port against dumps of the official PyTorch code (the formats of shared/reference):
// DiT model cases, sampling loops, AdamW training steps (verify/dit.ts) and diffusers VAE dumps
// (verify/vae.ts). Used by `dit verify`, the demo and the tests.
import { readSafetensors } from '../engine/safetensors.js';
import { Report, type VerifyReport } from './report.js';
import { verifyModel, verifySampleLoop, verifyTrainStep } from './dit.js';
import { verifyVae } from './vae.js';

export { compare, type CheckRow, type VerifyReport } from './report.js';

/** Runs every check the reference file supports. */
export async function verifyReference(referenceFile: string, weightsFile?: string, log: (m: string) => void = () => {}): Promise<VerifyReport> {
  const ref = await readSafetensors(referenceFile);
  const r = new Report();
  let kind: string;
  if (ref.has('step0.loss')) { kind = 'train-step'; await verifyTrainStep(ref, referenceFile, r, log); }
  else if (ref.has('ddpm.x') || ref.has('ddim.x')) { kind = 'sample-loop'; await verifySampleLoop(ref, referenceFile, weightsFile, r, log); }
  else if (ref.has('inputs.x') && (ref.has('out.forward') || ref.has('inter.x_embed'))) { kind = 'dit-model'; await verifyModel(ref, referenceFile, weightsFile, r, log); }
  else if (ref.has('enc.mean') || ref.has('dec.out') || ref.has('inter.decoder.conv_in') || ref.has('dist.params')) {
    kind = 'vae';
    await verifyVae(ref, referenceFile, weightsFile, r, log);
  } else throw new Error(`${referenceFile}: not a recognised reference dump (no out.forward, ddpm.x, step0.loss or VAE keys)`);
  return { reference: referenceFile, kind, rows: r.rows, pass: r.rows.every((x) => x.pass), notes: r.notes };
}
