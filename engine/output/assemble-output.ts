/**
 * Writes everything around the tensors: the shard index, config.json, tokenizer files and the
 * model card. Runs inside the temporary output directory before it is renamed into place.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { torchDTypeName } from "@mergeloom/proto/dtype";
import { StorageError } from "../errors/index.js";
import { writeShardIndex, type ShardPlan } from "./shard-layout.js";
import { copyTokenizerFiles, writeModelConfig, writeModelCard } from "./hf-files.js";
import { localPath } from "../driver/tensor-io.js";
import type { MergePlan } from "../plan/build-plan.js";
import { fetchTokenizerFiles } from "../storage/hub/fetch-tokenizer-files.js";
import { resolveModelReference } from "../plan/model-ref.js";
import { writeMergedTokenizer } from "../tokenizer/write-tokenizer.js";

export interface AssembleOptions {
  /** mergekit-yaml's --copy-tokenizer (default true). */
  copyTokenizer?: boolean;
  /** mergekit-yaml's --write-model-card (default true): README.md and mergekit_config.yml. */
  writeModelCard?: boolean;
  onWarning?: (message: string) => void;
}

export async function assembleOutput(dir: string, plan: MergePlan, shards: readonly ShardPlan[], opts: AssembleOptions = {}): Promise<void> {
  await writeShardIndex(dir, shards, { mergeloom_version: "0.1.0" });
  const cfgSource = plan.checkpoints.get(plan.configModel);
  if (cfgSource?.config) {
    const srcLayers = cfgSource.config.num_hidden_layers;
    await writeModelConfig(dir, withVocabSize(cfgSource.config, plan.vocabSize), {
      numHiddenLayers: srcLayers !== plan.numLayers || typeof srcLayers === "number" ? plan.numLayers : undefined,
      torchDtype: torchDTypeName(plan.outDtype),
    });
  }
  if (opts.copyTokenizer !== false) {
    const tok = plan.config.tokenizerSource;
    const tokRef = tok === undefined || tok === "base" || tok === "union" ? (plan.config.baseModel ?? plan.config.slices[0].sources[0].model) : tok;
    let tokDir: string | undefined;
    const donor = plan.tokenizerDonor;
    if (donor?.kind === "hub") {
      // Tokenizer files of the pinned commit, through the HF cache (downloaded there when missing).
      tokDir = (await fetchTokenizerFiles(donor.repo, donor.revision, donor.sha)).dir;
    } else tokDir = localPath(donor?.location ?? resolveModelReference(tokRef));
    if (tokDir) await copyTokenizerFiles(tokDir, dir, { chatTemplate: plan.config.chatTemplate });
    // A merged vocabulary (mergekit's BuildTokenizer ran): its files replace the copied ones.
    if (plan.tokenizer) await writeMergedTokenizer(dir, plan.tokenizer);
  } else if (plan.config.chatTemplate) {
    // mergekit's run_merge says the same: the template lives in the tokenizer files.
    opts.onWarning?.("chat_template is set but --no-copy-tokenizer writes no tokenizer files, so the template is not saved");
  }
  if (opts.writeModelCard !== false) {
    const models = [...new Set(plan.config.slices.flatMap((s) => s.sources.map((x) => x.model)))];
    await writeModelCard(dir, { yaml: plan.config.sourceText, method: plan.method.name, models, baseModel: plan.config.baseModel, revisions: plan.pins });
    // mergekit writes the config next to the card, as given.
    const path = join(dir, "mergekit_config.yml");
    await writeFile(path, plan.config.sourceText).catch((err: unknown) => {
      throw new StorageError(`write ${path}: ${(err as Error).message}`, { cause: err });
    });
  }
}

/** mergekit's _update_config_vocab: vocab_size becomes the merged (padded) vocabulary's size. */
function withVocabSize(cfg: Record<string, unknown>, vocabSize: number | undefined): Record<string, unknown> {
  if (vocabSize === undefined) return cfg;
  const text = cfg.text_config as Record<string, unknown> | undefined;
  if (!("vocab_size" in cfg) && text && "vocab_size" in text) return { ...cfg, text_config: { ...text, vocab_size: vocabSize } };
  return { ...cfg, vocab_size: vocabSize };
}
