// Public entry point of @mergeloom/test/harness: what other packages may import.
export { Proc, startWorker, uniquePrefix } from "./cluster.js";
export { startTestHub, type HubServerCounters, type TestHubOptions } from "./hub-server.js";
export { startNatsServer } from "./nats-server.js";
export { REPO_ROOT } from "./repo-root.js";
export { CORPUS_DIR, CORPUS_PARITY_DIR, CORPUS_PARITY_TORCH1_DIR, corpusEntries, mapCorpusModels, writeCorpusStandIns } from "./corpus-standins.js";
