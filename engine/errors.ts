// The errors the engine throws on purpose, one class per thing a caller can do something about. Every one
// extends DitError (catch that for "any error of this library"); messages name the op, the shapes or the
// file, and say what to do. Anything else that escapes (a TypeError, a Dawn crash) is a bug.

/** What an error is about, when known: the op that failed, the file it read. */
export interface ErrorDetails {
  op?: string;
  file?: string;
  cause?: unknown;
}

/** The base class of every error this library throws on purpose. */
export class DitError extends Error {
  override name = 'DitError';
  /** The op (kernel, function or method) that failed, when there is one. */
  readonly op?: string;
  /** The file being read or written, when there is one. */
  readonly file?: string;
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.op = details.op;
    this.file = details.file;
  }
}

/**
 * An op, layer or function got arguments it cannot take: shapes that do not match or broadcast, a wrong
 * dtype, an axis, label or timestep out of range, a tensor outside the autograd graph. Thrown before any GPU
 * work is recorded, so the device and every other tensor are still usable.
 */
export class ShapeError extends DitError { override name = 'ShapeError'; }

/**
 * The WebGPU device cannot do what was asked: no adapter, the device was lost, out of GPU memory, an
 * adapter limit exceeded, a kernel that does not compile, or an asynchronous GPU error. After a lost device,
 * `closeDevice()` then `getDevice()` starts a new one (tensors of the old device are gone).
 */
export class DeviceError extends DitError { override name = 'DeviceError'; }

/**
 * A checkpoint or data file cannot be used: missing, truncated, malformed, an unsupported format, or names
 * and shapes that do not fit the model being loaded. The message names the file and the tensor.
 * `SafetensorsError` and `TorchLoadError` are its subclasses for the two formats.
 */
export class CheckpointError extends DitError { override name = 'CheckpointError'; }

/**
 * A tensor was used after its GPU buffer was freed, by `dispose()` or at the end of the `scope()` that
 * created it. Return it from the scope, or `keep()` it, to use it later.
 */
export class DisposedTensorError extends DitError { override name = 'DisposedTensorError'; }

/**
 * Values that training must keep finite are not (NaN or ±inf): a loss, a gradient norm, or weights about to
 * be saved. Nothing is written for them, so the last good file stays as it was; the `dit` command exits 3.
 * (Non-finite values in a file being *read* are a CheckpointError: the input cannot be used.)
 */
export class NonFiniteError extends DitError { override name = 'NonFiniteError'; }
