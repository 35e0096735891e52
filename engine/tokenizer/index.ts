// Public entry point of @mergeloom/engine/tokenizer: what other packages may import.
export { isEmbeddingTensor } from "./plan-embeddings.js";
