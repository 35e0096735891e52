/**
 * mergekit-yaml's options (mergekit/options.py: MergeOptions) on `mergeloom merge`, so scripts
 * written for mergekit run unchanged. The ones mergeloom honours are declared with the merge
 * command's own options; every other one is accepted here and answered with one warning saying why
 * it does not apply.
 */
import { Option, type Command } from "commander";

interface IgnoredOption {
  /** mergekit's flag, without `--`. */
  name: string;
  /** Takes a value (else a boolean flag with its `--no-` form). */
  value?: string;
  why: string;
}

const NO_GPU = "merges run on the CPU's WebAssembly SIMD kernels (no GPU kernels yet); spread a merge over machines with --nats instead";

const IGNORED: readonly IgnoredOption[] = [
  { name: "cuda", why: NO_GPU },
  { name: "device", value: "<device>", why: NO_GPU },
  { name: "read-to-gpu", why: NO_GPU },
  { name: "multi-gpu", why: NO_GPU },
  { name: "gpu-rich", why: NO_GPU },
  { name: "low-cpu-memory", why: "memory is already bounded: tensors stream in row chunks through a fixed per-thread arena" },
  { name: "lazy-unpickle", why: "inputs are read lazily by byte range from safetensors already; pickled checkpoints are not read" },
  { name: "trust-remote-code", why: "no model code is run: config.json is read as data" },
  { name: "clone-tensors", why: "every output tensor is written at its own offset, so tensors never share storage" },
  { name: "async-write", why: "merge threads write their tensors to the preallocated shards in place, concurrently" },
  { name: "write-threads", value: "<n>", why: "merge threads write their tensors to the preallocated shards in place, concurrently" },
  { name: "transformers-cache", value: "<dir>", why: "models are read from local paths and URLs; there is no transformers cache to override" },
  { name: "lora-merge-cache", value: "<dir>", why: "no merged LoRA copies are cached on disk" },
  { name: "lora-merge-dtype", value: "<dtype>", why: "no merged LoRA copies are written" },
];

/** camelCase key commander stores an option under. */
function keyOf(name: string): string {
  return name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Adds mergekit-yaml's options that do not apply (hidden from --help, listed in the README). */
export function addIgnoredMergekitOptions(cmd: Command): Command {
  for (const o of IGNORED) {
    if (o.value) {
      cmd.addOption(new Option(`--${o.name} ${o.value}`).hideHelp());
    } else {
      cmd.addOption(new Option(`--${o.name}`).hideHelp());
      cmd.addOption(new Option(`--no-${o.name}`).hideHelp());
    }
  }
  // mergekit's -v/-vv (verbosity) counts; mergeloom has one level of output.
  cmd.addOption(new Option("-v, --verbose", "").hideHelp().argParser((_v: string, prev: number | undefined) => (prev ?? 0) + 1));
  return cmd;
}

/** One warning per mergekit option that was given but does not apply. */
export function ignoredMergekitWarnings(flags: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const o of IGNORED) {
    const v = flags[keyOf(o.name)];
    if (v === undefined || v === false) continue;
    out.push(`--${o.name} is accepted for mergekit-yaml compatibility and ignored: ${o.why}`);
  }
  if (flags.verbose) out.push("-v is accepted for mergekit-yaml compatibility and ignored: mergeloom's output has one level (use --json for every event)");
  return out;
}
