/** At most `n` holders at once; the rest wait in arrival order. */
export class Semaphore {
  private held = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}

  /** Resolves with a release function (idempotent) once a place is free. */
  async acquire(): Promise<() => void> {
    if (this.held >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    else this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The place passes straight to the next waiter.
      if (next) next(); else this.held--;
    };
  }

  async run<T>(f: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try { return await f(); } finally { release(); }
  }
}
