// Number, byte and time formatting shared by the pages and charts.

export const MB = 1048576; // Heroku's "MB" in runtime metrics is 2^20 bytes.

export function fmtNum(v: number | null | undefined, digits = 0): string {
  if (v == null || !isFinite(v)) return '–';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** fmtCompact renders 12345 as "12.3k". */
export function fmtCompact(v: number | null | undefined): string {
  if (v == null || !isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toFixed(2).replace(/\.?0+$/, '') || '0';
}

export function fmtMs(v: number | null | undefined): string {
  if (v == null || !isFinite(v)) return '–';
  if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
  if (v >= 100) return v.toFixed(0) + ' ms';
  return v.toFixed(1).replace(/\.0$/, '') + ' ms';
}

export function fmtBytes(v: number | null | undefined): string {
  if (v == null || !isFinite(v)) return '–';
  const mb = v / MB;
  if (mb >= 1024) return (mb / 1024).toFixed(2) + ' GB';
  if (mb >= 100) return mb.toFixed(0) + ' MB';
  if (mb >= 1) return mb.toFixed(1) + ' MB';
  return mb.toFixed(2) + ' MB';
}

export function fmtPct(v: number | null | undefined): string {
  if (v == null || !isFinite(v)) return '–';
  if (v === 0) return '0%';
  if (v < 0.01) return '<0.01%';
  if (v < 10) return v.toFixed(2).replace(/\.?0+$/, '') + '%';
  return v.toFixed(0) + '%';
}

/** fmtAgo renders a past time relative to now: "3 min ago". */
export function fmtAgo(t: string | number | Date | null | undefined, now = Date.now()): string {
  if (t == null) return '–';
  const ms = now - new Date(t).getTime();
  if (!isFinite(ms)) return '–';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.round(m / 60);
  if (hr < 48) return `${hr} h ago`;
  return `${Math.round(hr / 24)} d ago`;
}

const pad = (n: number) => (n < 10 ? '0' : '') + n;

/** fmtTime formats a time in UTC or local time, e.g. "Nov 25 14:05 UTC". */
export function fmtTime(t: number | Date, utc: boolean, withSeconds = false): string {
  const d = typeof t === 'number' ? new Date(t) : t;
  const mon = MONTHS[utc ? d.getUTCMonth() : d.getMonth()];
  const day = utc ? d.getUTCDate() : d.getDate();
  const hh = utc ? d.getUTCHours() : d.getHours();
  const mm = utc ? d.getUTCMinutes() : d.getMinutes();
  const ss = utc ? d.getUTCSeconds() : d.getSeconds();
  return `${mon} ${day} ${pad(hh)}:${pad(mm)}${withSeconds ? ':' + pad(ss) : ''}${utc ? ' UTC' : ''}`;
}

/** fmtRange names a bucket: "Nov 25 17:20–17:30 UTC" (the end is exclusive; the date repeats when it changes). */
export function fmtRange(a: number, b: number, utc: boolean): string {
  const da = new Date(a);
  const db = new Date(b);
  const hm = (d: Date) => pad(utc ? d.getUTCHours() : d.getHours()) + ':' + pad(utc ? d.getUTCMinutes() : d.getMinutes());
  const day = (d: Date) => `${MONTHS[utc ? d.getUTCMonth() : d.getMonth()]} ${utc ? d.getUTCDate() : d.getDate()}`;
  // A bucket ending at midnight ends at "24:00" of its own day, not "00:00" of the next.
  const endsAtMidnight = hm(db) === '00:00' && b > a && day(new Date(b - 1)) === day(da);
  const end = endsAtMidnight ? '24:00' : day(db) === day(da) ? hm(db) : `${day(db)} ${hm(db)}`;
  return `${day(da)} ${hm(da)}\u2013${end}${utc ? ' UTC' : ''}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** axisTimes labels time-axis ticks in 24-hour time, adding the date where the day changes. */
export function axisTimes(splits: number[], incr: number, utc: boolean): string[] {
  let lastDay = '';
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const day = `${MONTHS[utc ? d.getUTCMonth() : d.getMonth()]} ${utc ? d.getUTCDate() : d.getDate()}`;
    if (incr >= 86400) return day;
    const hm = pad(utc ? d.getUTCHours() : d.getHours()) + ':' + pad(utc ? d.getUTCMinutes() : d.getMinutes());
    const label = day !== lastDay ? hm + '\n' + day : hm;
    lastDay = day;
    return label;
  });
}
