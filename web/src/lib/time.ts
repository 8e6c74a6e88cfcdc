import { signal } from '@preact/signals';

/** Ticks every 30 s so waiting times stay current without re-rendering on every second. */
export const now = signal(Date.now());
setInterval(() => (now.value = Date.now()), 30_000);

/** "3 h 12 m", "45 m", "2 d 4 h", "< 1 m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 60_000) return '< 1 m';
  const mins = Math.floor(ms / 60_000);
  const days = Math.floor(mins / 1440);
  const hours = Math.floor((mins % 1440) / 60);
  const m = mins % 60;
  if (days > 0) return hours ? `${days} d ${hours} h` : `${days} d`;
  if (hours > 0) return `${hours} h ${m} m`;
  return `${m} m`;
}

export function formatDurationLong(ms: number): string {
  return formatDuration(ms)
    .replace('< 1 m', 'less than a minute')
    .replace(/(\d+) d/, (_, n) => `${n} day${n === '1' ? '' : 's'}`)
    .replace(/(\d+) h/, (_, n) => `${n} hour${n === '1' ? '' : 's'}`)
    .replace(/(\d+) m$/, (_, n) => `${n} minute${n === '1' ? '' : 's'}`);
}

export type Age = 'fresh' | 'normal' | 'warn' | 'late';
/** Age bands for colouring waiting time: < 1 h, < 4 h, < 24 h, older. */
export function ageBand(ms: number): Age {
  const h = ms / 3_600_000;
  if (h < 1) return 'fresh';
  if (h < 4) return 'normal';
  if (h < 24) return 'warn';
  return 'late';
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function formatShort(iso: string | null | undefined, nowMs: number): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const today = new Date(nowMs);
  if (d.toDateString() === today.toDateString()) return timeFmt.format(d);
  if (nowMs - d.getTime() < 6 * 86_400_000 && d.getTime() <= nowMs) return dayFmt.format(d);
  return dateFmt.format(d);
}

export function formatFull(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '—' : fullFmt.format(d);
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
