/**
 * Read timeout for one HTTP request, as a minimum rate rather than a deadline: a 5 GB range may
 * take minutes, but a server that sends nothing — or drips a byte at a time — must fail in
 * seconds. In every window of `timeoutMs` the request must get its response headers or at least
 * MIN_WINDOW_BYTES of body (or the rest of the range, when less remains); otherwise it is aborted
 * as stalled (curl's --speed-limit/--speed-time idea with one knob).
 */
import { StorageError } from "../errors/index.js";

export const MIN_WINDOW_BYTES = 64 * 1024;

export class StallWatch {
  readonly signal: AbortSignal;
  /** Set when the request was aborted for stalling. */
  stalled?: StorageError;
  private readonly ac = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private got = 0;
  private gotAtWindowStart = 0;
  private headersInWindow = false;

  /**
   * `what` names the request in the error (`read URL bytes A-B`); `expected` is the body length
   * when known.
   */
  constructor(
    private readonly what: string,
    private readonly timeoutMs: number,
    private readonly expected: number | undefined,
  ) {
    this.signal = this.ac.signal;
    this.timer = setInterval(() => this.check(), timeoutMs);
    this.timer.unref();
  }

  headers(): void {
    this.headersInWindow = true;
  }

  progress(bytes: number): void {
    this.got += bytes;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const inWindow = this.got - this.gotAtWindowStart;
    const remaining = this.expected === undefined ? Infinity : this.expected - this.gotAtWindowStart;
    const need = Math.max(1, Math.min(MIN_WINDOW_BYTES, remaining));
    const ok = this.headersInWindow || inWindow >= need;
    this.headersInWindow = false;
    this.gotAtWindowStart = this.got;
    if (ok) return;
    const secs = this.timeoutMs / 1000;
    const of = this.expected === undefined ? "" : ` of ${this.expected}`;
    this.stalled = new StorageError(
      `${this.what}: stalled: ${inWindow === 0 ? "no data" : `only ${inWindow} bytes`} in ${secs} s (received ${this.got}${of} bytes; --http-timeout ${secs} needs ${need} bytes per window)`,
      { retryable: true },
    );
    this.stop();
    this.ac.abort(this.stalled);
  }
}
