import { MemoryTransport } from "../../transport/memory-transport.js";
import { describeTransportConformance } from "./conformance.js";

describeTransportConformance("memory", async () => new MemoryTransport());
