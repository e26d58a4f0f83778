// The package entry `dit-webgpu/node`: helpers that only work in Node — Dawn, files (atomic writes), PNG
// files, and image datasets read from disk (CIFAR-10 binaries, Fashion-MNIST, PNG folders, the built-in
// synthetic set cached on disk). Browser code must not import this entry.
export { loadDawn, readFileBytes, writeFileAtomic, readText, dirnameOf, joinPath } from '../engine/node.js';
export { writePng, readPng } from './png.js';
export { writeClassGrid, writeClassFolders } from './dataset.js';
export {
  readCifar10, readPngFolder, readFashionMnist, syntheticDataset, loadDataset, parseDataSpec, parseCifar10, toCifar10Bytes,
  CIFAR10_CLASSES, FASHION_MNIST_CLASSES, DATA_SPEC_HELP, type DataSpec,
} from './readers.js';
