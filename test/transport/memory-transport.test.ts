import { MemoryTransport } from "@mergeloom/transport";
import { describeTransportConformance } from "./conformance.js";

describeTransportConformance("memory", async () => new MemoryTransport());
