import { MemoryTransport } from "../../proto/memory-transport.js";
import { describeTransportConformance } from "./conformance.js";

describeTransportConformance("memory", async () => new MemoryTransport());
