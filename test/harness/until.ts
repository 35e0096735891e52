/** Polls `cond` every 5 ms until it holds; fails naming `what` after `ms`. */
export async function until(cond: () => boolean, ms: number, what = "a condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
