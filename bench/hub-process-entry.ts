/**
 * Child process of `startHubProcess` (start-hub-process.ts): runs the test Hub server and answers
 * the parent's calls over the IPC channel. Started with the server's options as JSON in argv[2].
 */
import { startTestHub, type TestHubOptions } from "@mergeloom/test/harness";
import type { HubCall, HubReply } from "./start-hub-process.js";

const hub = await startTestHub(JSON.parse(process.argv[2] ?? "{}") as TestHubOptions);
/** Sends a reply; with `last`, exits once it is on its way. */
const send = (m: HubReply, last = false) => process.send!(m, undefined, {}, () => last && process.exit(0));

process.on("message", (m: HubCall) => {
  const run = async (): Promise<unknown> => {
    switch (m.op) {
      case "addCommit":
        return hub.addCommit(...m.args);
      case "resetCounters":
        return hub.resetCounters();
      case "counters":
        return { ...hub.counters };
      case "close":
        return hub.close();
    }
  };
  run().then(
    (result) => send({ id: m.id, result }, m.op === "close"),
    (err: unknown) => send({ id: m.id, error: (err as Error).message ?? String(err) }),
  );
});
// The parent's end: with it gone there is no one left to serve.
process.on("disconnect", () => process.exit(0));
send({ id: 0, result: { url: hub.url } });
