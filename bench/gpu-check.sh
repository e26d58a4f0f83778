#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/GPU.md): adapter, tests, kernel and DiT benchmarks (ours
# and TF.js on the same Dawn adapter), and PyTorch on the same card. Results land in $OUT.
#   bash ../shared/gpu/pack.sh; cp -r ../shared/reference .gpu/reference
#   device run: carry [".gpu", "build"], command "bash .gpu/on-gpu.sh bash bench/gpu-check.sh"
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export DIT_REFERENCE_DIR=$PWD/.gpu/reference
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; ls /usr/local/nvidia/share/vulkan/icd.d/ 2>&1; cat "${VK_DRIVER_FILES:-/dev/null}" 2>/dev/null | head -8
ldconfig -p | grep -i -E 'libvulkan|GLX_nvidia|libGLdispatch|libEGL_nvidia' | head
node -e "
import('./build/engine/device.js').then(async ({ getDevice }) => {
  const g = await getDevice();
  console.log(JSON.stringify({ adapter: g.adapter, hasF16: g.hasF16, hasSubgroups: g.hasSubgroups }, null, 1));
  process.exit(0);
});" 2>&1 | tee "$OUT/adapter.json"
grep -q '"description"' "$OUT/adapter.json" || { echo "no adapter: stopping"; exit 1; }
echo "== tests"; timeout 120 node node_modules/mocha/bin/mocha.js --reporter dot 2>&1 | grep -v '^Warning' | tail -25 | tee "$OUT/tests.txt"
echo "== kernels"; timeout 150 node build/bench/kernels.js --quick --json "$OUT/kernels.json" 2>"$OUT/kernels.log" | tee "$OUT/kernels.md"
echo "== dit"; timeout 60 node build/bench/dit.js --models DiT-S/2,DiT-XL/2 --batch 8 --json "$OUT/dit.json" 2>&1 | grep -v '^Warning' | tee "$OUT/dit.txt"
echo "== profile"; timeout 60 node build/bench/profile.js --model DiT-XL/2 --batch 8 --top 25 2>&1 | grep -v '^Warning' | tee "$OUT/profile.txt"
echo "== torch"; timeout 45 python3 bench/torch_dit.py 8 DiT-S/2,DiT-XL/2 2>&1 | tee "$OUT/torch.jsonl"
echo done
