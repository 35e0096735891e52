/** `mergeloom download CONFIG` (and `--download` on merge/plan): fill the HF cache with what a config needs. */
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { addHttpOptions, httpOptionsFrom, type HttpFlags } from "./http-options.js";
import { downloadModel } from "@mergeloom/engine/storage";
import { resolveModelReference } from "@mergeloom/engine/storage";
import type { MergeConfig } from "@mergeloom/engine/config";
import { loadConfig } from "@mergeloom/engine/job";
import { formatBytes } from "./render-events.js";

/** Every model reference in a config: models, base, task vectors and the tokenizer source. */
export function configModelRefs(cfg: MergeConfig): string[] {
  const refs = new Set<string>();
  if (cfg.baseModel) refs.add(cfg.baseModel);
  for (const s of cfg.slices) {
    for (const src of s.sources) {
      refs.add(src.model);
      for (const v of src.vectors ?? []) refs.add(v.path);
    }
  }
  if (cfg.tokenizerSource && cfg.tokenizerSource !== "base" && cfg.tokenizerSource !== "union") refs.add(cfg.tokenizerSource);
  return [...refs];
}

/** Downloads every Hub model of the config; local paths are left alone. Progress on stderr (a bar on a TTY). */
export async function downloadConfig(cfg: MergeConfig, opts: { json?: boolean; stream?: NodeJS.WriteStream } = {}): Promise<void> {
  const stream = opts.stream ?? process.stderr;
  for (const ref of configModelRefs(cfg)) {
    const r = await resolveModelReference(ref);
    if (r.kind !== "hub") continue;
    const started = performance.now();
    let bar: cliProgress.SingleBar | undefined;
    let lastFile = "";
    const res = await downloadModel(r.repo, r.revision, r.sha, (p) => {
      if (!stream.isTTY || opts.json) return;
      if (p.file !== lastFile) {
        bar?.stop();
        lastFile = p.file;
        bar = new cliProgress.SingleBar(
          { format: ` ${p.file} {bar} {percentage}% | {bytes} | {rate}`, stream, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.size, 0, { bytes: "", rate: "" });
      }
      const secs = Math.max((performance.now() - started) / 1000, 1e-3);
      bar!.update(p.done, { bytes: `${formatBytes(p.done)}/${formatBytes(p.size)}`, rate: `${formatBytes(p.networkBytes / secs)}/s` });
    });
    bar?.stop();
    const line = {
      type: "download",
      model: ref,
      repo: r.repo,
      revision: r.revision,
      sha: r.sha,
      dir: res.dir,
      downloaded: res.downloaded.length,
      cached: res.alreadyCached.length,
      networkBytes: res.networkBytes,
    };
    if (opts.json) process.stdout.write(JSON.stringify(line) + "\n");
    else
      stream.write(
        `${ref} → ${r.sha.slice(0, 12)}: ${res.downloaded.length} file(s) downloaded (${formatBytes(res.networkBytes)}), ${res.alreadyCached.length} already cached, in ${res.dir}\n`,
      );
  }
}

export function registerDownloadCommand(program: Command): void {
  const cmd = program
    .command("download")
    .description("download the Hub models a config names into the Hugging Face cache (HF_HUB_CACHE), resumable and verified, for offline merges")
    .argument("<config>", "mergekit YAML config")
    .option("--json", "print one JSON object per model");
  addHttpOptions(cmd).action(async (config: string, flags: HttpFlags & { json?: boolean }) => {
    httpOptionsFrom(flags);
    await downloadConfig(await loadConfig(config), flags);
  });
}
