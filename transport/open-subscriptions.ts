/** What a transport holds open (consumers, watches, subscriptions), so closing it stops them all. */
import type { Stoppable } from "./transport.js";

export class OpenSubscriptions {
  private readonly open = new Set<Stoppable>();

  /** A handle whose stop runs `stop` and then forgets the handle. */
  track(stop: (opts?: { abort?: boolean }) => Promise<void>): Stoppable {
    const sub: Stoppable = {
      stop: async (o) => {
        await stop(o);
        this.open.delete(sub);
      },
    };
    this.open.add(sub);
    return sub;
  }

  /** Stops every open handle, aborting in-flight handlers. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.open].map((s) => s.stop({ abort: true })));
  }
}
