/**
 * One model reference string → where its bytes are. mergekit's rule: a local path that exists
 * wins; else `org/name[@revision]` is a Hub id, resolved here, once, to a commit sha (the plan,
 * the task messages and the model card carry the sha, so a branch that moves mid-job changes
 * nothing). URIs (http, file, synthetic) pass through. Used for models, base_model,
 * tokenizer sources, `vectors:` paths and either side of `model+adapter`.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError } from "../../errors/index.js";
import { cachedCommit } from "./hf-cache.js";
import { HubClient } from "./hub-client.js";
import { HubMissingError } from "./hub-errors.js";
import { DEFAULT_REVISION, hubUri, parseHubReference } from "./hub-reference.js";
import { hubSettings, type HubSettings } from "./hub-settings.js";
import { sharedHubClient } from "./hub-byte-source.js";

export type ResolvedModel =
  { kind: "path"; ref: string; location: string } | { kind: "hub"; ref: string; repo: string; revision: string; sha: string; location: string };

export interface ResolveOptions {
  cwd?: string;
  settings?: HubSettings;
  client?: HubClient;
  /** Commit shas pinned earlier for these references (a resumed job): used without asking the Hub. */
  pins?: Readonly<Record<string, string>>;
}

const URI = /^[a-z][a-z0-9+.-]*:\/\//i;

export async function resolveModelReference(ref: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  if (URI.test(ref)) return { kind: "path", ref, location: ref };
  const local = resolve(opts.cwd ?? process.cwd(), ref);
  const hub = parseHubReference(ref);
  if (!hub || existsSync(local)) return { kind: "path", ref, location: local };
  const settings = opts.settings ?? hubSettings();
  const revision = hub.revision ?? DEFAULT_REVISION;
  const pinned = opts.pins?.[ref];
  const done = (sha: string): ResolvedModel => ({ kind: "hub", ref, repo: hub.repo, revision, sha, location: hubUri(hub.repo, sha) });
  if (pinned) return done(pinned);
  const cached = await cachedCommit(settings.cacheDir, hub.repo, revision);
  if (settings.offline) {
    if (cached) return done(cached);
    throw new CheckpointError(
      `hub ${hub.repo}@${revision}`,
      `HF_HUB_OFFLINE is set and the Hugging Face cache (${settings.cacheDir}) has no revision '${revision}' of ${hub.repo}; run \`mergeloom download CONFIG\` while online, or unset HF_HUB_OFFLINE`,
      { code: "CHECKPOINT_MISSING" },
    );
  }
  // A full commit sha already in the cache needs no network at all.
  if (cached && cached === revision) return done(cached);
  const client = opts.client ?? (opts.settings ? new HubClient(settings) : sharedHubClient().client);
  try {
    return done((await client.revisionInfo(hub.repo, revision)).sha);
  } catch (err) {
    // Like huggingface_hub: the Hub unreachable (not an answer such as 401/404) and the ref cached → use the cache.
    if (cached && err instanceof MergeloomError && err.retryable) return done(cached);
    // `org/name` may have been meant as a local path: say that no such directory exists either.
    if (err instanceof HubMissingError && err.missing === "repo") {
      throw new HubMissingError(
        `hub ${hub.repo}@${revision}`,
        `${err.message.replace(/^read checkpoint hub \S+: /, "")}; no local directory ${local} exists either`,
        "repo",
      );
    }
    throw err;
  }
}
