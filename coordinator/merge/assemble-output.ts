/**
 * Writes everything around the tensors: the shard index, config.json, tokenizer files and the
 * model card. Runs inside the temporary output directory before it is renamed into place.
 */
import { torchDTypeName } from "../../proto/dtype.js";
import { writeShardIndex, type ShardPlan } from "../../worker/storage/shard-layout.js";
import { copyTokenizerFiles, writeModelConfig, writeModelCard } from "../../worker/storage/hf-files.js";
import { localPath } from "../../worker/merge/tensor-io.js";
import type { MergePlan } from "../plan/build-plan.js";
import { resolveModelReference } from "../plan/model-ref.js";
import { writeMergedTokenizer } from "../tokenizer/write-tokenizer.js";

export async function assembleOutput(dir: string, plan: MergePlan, shards: readonly ShardPlan[]): Promise<void> {
  await writeShardIndex(dir, shards, { mergeloom_version: "0.1.0" });
  const cfgSource = plan.checkpoints.get(plan.configModel);
  if (cfgSource?.config) {
    const srcLayers = cfgSource.config.num_hidden_layers;
    await writeModelConfig(dir, withVocabSize(cfgSource.config, plan.vocabSize), {
      numHiddenLayers: srcLayers !== plan.numLayers || typeof srcLayers === "number" ? plan.numLayers : undefined,
      torchDtype: torchDTypeName(plan.outDtype),
    });
  }
  const tok = plan.config.tokenizerSource;
  let tokRef: string | undefined;
  if (tok === undefined || tok === "base") tokRef = plan.config.baseModel ?? plan.config.slices[0].sources[0].model;
  else if (tok === "union") tokRef = plan.config.baseModel ?? plan.config.slices[0].sources[0].model;
  else tokRef = tok;
  const tokDir = localPath(resolveModelReference(tokRef));
  if (tokDir) await copyTokenizerFiles(tokDir, dir, { chatTemplate: plan.config.chatTemplate });
  // A merged vocabulary (mergekit's BuildTokenizer ran): its files replace the copied ones.
  if (plan.tokenizer) await writeMergedTokenizer(dir, plan.tokenizer);
  const models = [...new Set(plan.config.slices.flatMap((s) => s.sources.map((x) => x.model)))];
  await writeModelCard(dir, { yaml: plan.config.sourceText, method: plan.method.name, models, baseModel: plan.config.baseModel });
}

/** mergekit's _update_config_vocab: vocab_size becomes the merged (padded) vocabulary's size. */
function withVocabSize(cfg: Record<string, unknown>, vocabSize: number | undefined): Record<string, unknown> {
  if (vocabSize === undefined) return cfg;
  const text = cfg.text_config as Record<string, unknown> | undefined;
  if (!("vocab_size" in cfg) && text && "vocab_size" in text) return { ...cfg, text_config: { ...text, vocab_size: vocabSize } };
  return { ...cfg, vocab_size: vocabSize };
}
