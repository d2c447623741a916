/** Docker's build output: newline-delimited JSON messages (stream, aux, errorDetail). */
export class BuildOutput {
  private readonly enc = new TextEncoder();
  private closed = false;

  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    private readonly quiet: boolean,
  ) {}

  get quietMode(): boolean {
    return this.quiet;
  }

  private write(msg: Record<string, unknown>): void {
    if (this.closed) return;
    this.sink(this.enc.encode(`${JSON.stringify(msg)}\r\n`));
  }

  /** Progress text; suppressed with `q`. */
  stream(text: string): void {
    if (!this.quiet) this.write({ stream: text });
  }

  /** Text shown even with `q` (the image ID at the end). */
  always(text: string): void {
    if (text) this.write({ stream: text });
  }

  status(msg: Record<string, unknown>): void {
    if (!this.quiet) this.write(msg);
  }

  aux(value: Record<string, unknown>): void {
    this.write({ aux: value });
  }

  error(message: string): void {
    this.write({ errorDetail: { message }, error: message });
  }

  close(): void {
    this.closed = true;
  }
}

export const shortId = (id: string) => id.replace(/^sha256:/, "").slice(0, 12);
