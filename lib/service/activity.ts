/**
 * Counts requests in flight (a streamed response counts until its body ends) and calls
 * `onIdle` once nothing has been in flight for `idleMs`. One timer, armed only while
 * idle: a busy or exited service has none.
 */
export class ActivityTracker {
  private inFlight = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly idleMs: number,
    private readonly onIdle: () => void,
  ) {
    this.arm();
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  begin(): void {
    this.inFlight++;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  end(): void {
    if (--this.inFlight === 0) this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.inFlight === 0) this.onIdle();
    }, this.idleMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Wraps a fetch handler so each request is counted until its response body is done. */
  wrap(handler: (req: Request) => Response | Promise<Response>): (req: Request) => Promise<Response> {
    return countRequests(
      handler,
      () => this.begin(),
      () => this.end(),
    );
  }
}

/**
 * Wraps a fetch handler: `begin` when a request arrives, `end` once its response body
 * has been fully sent (or the client went away), so a stream counts for its whole life.
 */
export function countRequests(handler: (req: Request) => Response | Promise<Response>, begin: () => void, end: () => void): (req: Request) => Promise<Response> {
  return async (req) => {
    begin();
    let res: Response;
    try {
      res = await handler(req);
    } catch (err) {
      end();
      throw err;
    }
    if (!res.body) {
      end();
      return res;
    }
    let ended = false;
    const done = () => {
      if (!ended) (ended = true), end();
    };
    req.signal.addEventListener("abort", done, { once: true });
    const body = res.body.pipeThrough(new TransformStream({ flush: done }));
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}
