/** A one-line progress bar with live metrics on a TTY; periodic plain lines otherwise (CI logs). */
export class Progress {
  private lastPrint = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly total: number,
    private readonly label: string,
  ) {}

  update(done: number, fields: Record<string, string>): void {
    const now = Date.now();
    const finished = done >= this.total;
    if (!finished && now - this.lastPrint < (this.tty ? 100 : 2000)) return;
    this.lastPrint = now;
    const width = 24;
    const filled = Math.round((width * done) / this.total);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const text = `${this.label} ${bar} ${done}/${this.total} ${Object.entries(fields)
      .map(([k, v]) => `${k} ${v}`)
      .join('  ')}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${text}${finished ? '\n' : ''}`);
    else process.stderr.write(`${text}\n`);
  }
}
