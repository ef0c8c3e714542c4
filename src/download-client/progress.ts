/** How a download reports its progress: a bar on a terminal, a line per 10 % in a log, or nothing. */
export interface Progress {
  /** A transfer begins (or resumes at `offset`) of a file of `total` bytes, if known. */
  start(name: string, total: number | undefined, offset: number): void;
  /** `done` bytes of the file are now on disk (including those from before a resume). */
  update(done: number): void;
  /** The transfer stopped (finished, cut or failed): end the bar's line. */
  stop(): void;
}

export const silentProgress: Progress = { start() {}, update() {}, stop() {} };

/** 1536 → `1.5 KiB` (IEC units, as `ls -h` and `curl` print them). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export interface ProgressFigures {
  done: number;
  total: number | undefined;
  /** Bytes per second over this transfer (not counting what a resume started from). */
  speed: number;
  /** Whole percent, when the total is known. */
  percent: number | undefined;
  /** Seconds left at the current speed, when it can be told. */
  eta: number | undefined;
}

/** Pure: the figures a progress display shows. */
export function progressFigures(
  done: number,
  total: number | undefined,
  offset: number,
  elapsedMs: number,
): ProgressFigures {
  const speed = elapsedMs > 0 ? ((done - offset) * 1000) / elapsedMs : 0;
  const percent = total ? Math.min(100, Math.floor((done * 100) / total)) : undefined;
  const eta = total !== undefined && speed > 0 ? (total - done) / speed : undefined;
  return { done, total, speed, percent, eta };
}

/** One progress line: `[#####-----]  45%  12.3 MiB / 27.1 MiB  3.2 MiB/s  ETA 0:05`, without the bar when `barWidth` is 0. */
export function formatProgressLine(f: ProgressFigures, barWidth: number): string {
  const parts: string[] = [];
  if (f.total !== undefined && f.percent !== undefined) {
    if (barWidth > 0) {
      const filled = Math.round((barWidth * f.done) / Math.max(1, f.total));
      parts.push(`[${'#'.repeat(Math.min(barWidth, filled))}${'-'.repeat(Math.max(0, barWidth - filled))}]`);
    }
    parts.push(`${String(f.percent).padStart(3)}%`, `${formatBytes(f.done)} / ${formatBytes(f.total)}`);
  } else {
    parts.push(formatBytes(f.done));
  }
  parts.push(`${formatBytes(Math.round(f.speed))}/s`);
  if (f.eta !== undefined) parts.push(`ETA ${formatDuration(f.eta)}`);
  return parts.join('  ');
}

interface Output {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * A bar redrawn in place on a terminal (at most ten times a second), or a plain line at every 10 %
 * when the output is a file or a pipe (cron mail and CI logs stay readable).
 */
export function createProgress(out: Output, now: () => number = Date.now): Progress {
  let name = '';
  let total: number | undefined;
  let offset = 0;
  let startedAt = 0;
  let lastDraw = 0;
  let lastTenth = -1;
  let drawn = false;
  const tty = out.isTTY === true;

  const draw = (done: number) => {
    const f = progressFigures(done, total, offset, now() - startedAt);
    if (tty) {
      // One line narrower than the terminal, or redrawing with \r would wrap and scroll.
      const columns = Math.max(20, out.columns ?? 80) - 1;
      const figures = formatProgressLine(f, 0);
      const labelRoom = columns - figures.length - 2;
      const label = name.length <= labelRoom ? name : labelRoom > 8 ? `${name.slice(0, labelRoom - 1)}…` : '';
      const barWidth = Math.max(0, Math.min(30, columns - label.length - 2 - figures.length - 4));
      const line = formatProgressLine(f, barWidth >= 10 ? barWidth : 0);
      out.write(`\r${label ? `${label}  ` : ''}${line}\x1b[K`);
      drawn = true;
    } else {
      out.write(`${name}: ${formatProgressLine(f, 0)}\n`);
    }
  };

  return {
    start(n, t, o) {
      name = n;
      total = t;
      offset = o;
      startedAt = now();
      lastDraw = 0;
      lastTenth = total ? Math.floor((o * 10) / total) : -1;
      if (tty) draw(o);
      else if (o > 0) out.write(`${name}: resuming at ${formatBytes(o)}${total ? ` of ${formatBytes(total)}` : ''}\n`);
    },
    update(done) {
      if (tty) {
        const t = now();
        if (t - lastDraw < 100 && done !== total) return;
        lastDraw = t;
        draw(done);
        return;
      }
      if (!total) return;
      const tenth = Math.floor((done * 10) / total);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        draw(done);
      }
    },
    stop() {
      if (tty && drawn) out.write('\n');
      drawn = false;
    },
  };
}
