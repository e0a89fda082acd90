// Light/dark theme: follows prefers-color-scheme unless the user picked one
// with the toggle (kept in localStorage). Charts read their colours here.

export type Theme = 'light' | 'dark';
const KEY = 'drainpipe.theme';
const mq = window.matchMedia('(prefers-color-scheme: dark)');
const listeners: (() => void)[] = [];

function stored(): Theme | null {
  try {
    const t = localStorage.getItem(KEY);
    return t === 'light' || t === 'dark' ? t : null;
  } catch {
    return null;
  }
}

export function theme(): Theme {
  return stored() ?? (mq.matches ? 'dark' : 'light');
}

function apply(): void {
  const s = stored();
  if (s) document.documentElement.dataset.theme = s;
  else delete document.documentElement.dataset.theme;
  for (const f of listeners) f();
}

export function initTheme(): void {
  apply();
  mq.addEventListener('change', () => {
    if (!stored()) apply();
  });
}

export function toggleTheme(): void {
  localStorage.setItem(KEY, theme() === 'dark' ? 'light' : 'dark');
  apply();
}

export function onThemeChange(f: () => void): () => void {
  listeners.push(f);
  return () => {
    const i = listeners.indexOf(f);
    if (i >= 0) listeners.splice(i, 1);
  };
}

export interface Palette {
  axis: string;
  grid: string;
  text: string;
  p50: string;
  p95: string;
  p99: string;
  max: string;
  connect: string;
  s2xx: string;
  s3xx: string;
  s4xx: string;
  s5xx: string;
  quota: string;
  deploy: string;
  crash: string;
  cycle: string[];
}

const LIGHT: Palette = {
  axis: '#5c6370',
  grid: 'rgba(0,0,0,0.07)',
  text: '#1d2129',
  p50: '#1f9d55',
  p95: '#d97706',
  p99: '#dc2626',
  max: '#7c3aed',
  connect: '#64748b',
  s2xx: '#16a34a',
  s3xx: '#2563eb',
  s4xx: '#d97706',
  s5xx: '#dc2626',
  quota: '#dc2626',
  deploy: '#5b4fc7',
  crash: '#dc2626',
  cycle: ['#2563eb', '#d97706', '#dc2626', '#16a34a', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#475569'],
};

const DARK: Palette = {
  axis: '#a3acb9',
  grid: 'rgba(255,255,255,0.08)',
  text: '#e6e9ef',
  p50: '#4ade80',
  p95: '#fbbf24',
  p99: '#f87171',
  max: '#c4b5fd',
  connect: '#94a3b8',
  s2xx: '#4ade80',
  s3xx: '#60a5fa',
  s4xx: '#fbbf24',
  s5xx: '#f87171',
  quota: '#f87171',
  deploy: '#a5b4fc',
  crash: '#f87171',
  cycle: ['#60a5fa', '#fbbf24', '#f87171', '#4ade80', '#c4b5fd', '#22d3ee', '#f472b6', '#a3e635', '#fb923c', '#94a3b8'],
};

export function palette(): Palette {
  return theme() === 'dark' ? DARK : LIGHT;
}
