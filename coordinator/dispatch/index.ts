// Public entry point of @mergeloom/coordinator/dispatch: what other packages may import.
export { EmbeddedDispatcher } from "./embedded-dispatcher.js";
export { TransportDispatcher } from "./transport-dispatcher.js";
