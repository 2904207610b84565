// The venue page's 7-day timeline: one row per camera, bars where a problem was open (from
// GET /api/v1/problems?site=&from=&to=&state=all), exam sessions shaded behind. Pure.
import type { ExamSession, Problem } from '../api/types'

export interface Bar {
  row: string // camera (target) or '' for the whole site (site_silent)
  start: number
  end: number
  status: string // worst status while open; 'silent' for site_silent
  problem: number
  faults: string[]
  open: boolean
}

export interface Shade {
  start: number
  end: number
  label: string
}

function clip(a: number, b: number, from: number, to: number): [number, number] | null {
  const s = Math.max(a, from)
  const e = Math.min(b, to)
  return e > s ? [s, e] : null
}

/** Bars of the window [from, to) for the given rows (cameras); `now` ends open problems. */
export function buildBars(problems: readonly Problem[], rows: readonly string[], from: number, to: number, now: number): Bar[] {
  const want = new Set(rows)
  const out: Bar[] = []
  for (const p of problems) {
    const site = p.kind === 'site'
    if (!site && (p.kind !== 'stream' || !want.has(p.target))) continue
    const start = Date.parse(p.start)
    const end = p.end ? Date.parse(p.end) : now
    if (!Number.isFinite(start) || !Number.isFinite(end)) continue
    const c = clip(start, end, from, Math.min(to, now))
    if (!c) continue
    out.push({
      row: site ? '' : p.target,
      start: c[0],
      end: c[1],
      status: site ? 'silent' : p.worst || p.status,
      problem: p.id,
      faults: p.faults,
      open: p.end === null,
    })
  }
  out.sort((a, b) => a.row.localeCompare(b.row) || a.start - b.start)
  return out
}

/** Exam sessions (not cancelled) clipped to the window, merged where they overlap. */
export function buildShades(sessions: readonly ExamSession[], from: number, to: number): Shade[] {
  const parts = sessions
    .filter((s) => !s.cancelled)
    .map((s) => ({ c: clip(s.start_ms, s.end_ms, from, to), label: `${s.occupation} ${s.level}` }))
    .filter((x): x is { c: [number, number]; label: string } => x.c !== null)
    .sort((a, b) => a.c[0] - b.c[0])
  const out: Shade[] = []
  for (const p of parts) {
    const last = out[out.length - 1]
    if (last && p.c[0] <= last.end) {
      last.end = Math.max(last.end, p.c[1])
      if (!last.label.includes(p.label)) last.label += `；${p.label}`
    } else out.push({ start: p.c[0], end: p.c[1], label: p.label })
  }
  return out
}

/** Share of [from, to) each row spent with an open problem (overlaps counted once). */
export function downShare(bars: readonly Bar[], row: string, from: number, to: number): number {
  const iv = bars.filter((b) => b.row === row || b.row === '').map((b) => [b.start, b.end] as [number, number])
  iv.sort((a, b) => a[0] - b[0])
  let total = 0
  let cs = -1
  let ce = -1
  for (const [s, e] of iv) {
    if (s > ce) {
      if (ce > cs) total += ce - cs
      cs = s
      ce = e
    } else ce = Math.max(ce, e)
  }
  if (ce > cs) total += ce - cs
  return to > from ? total / (to - from) : 0
}
