import { describe, expect, it } from 'vitest'
import type { ExamSession, Problem } from '../src/api/types'
import { buildBars, buildShades, downShare } from '../src/lib/timeline'

const H = 3600_000
const T0 = Date.parse('2026-12-01T00:00:00.000Z')
const iso = (ms: number) => new Date(ms).toISOString()

function problem(id: number, target: string, start: number, end: number | null, p: Partial<Problem> = {}): Problem {
  return {
    id, site: 'S', org: 'O', city: 'C', agent: 'a', kind: 'stream', target, state: end === null ? 'open' : 'closed', status: 'down', worst: 'down',
    severity: 'major', faults: ['black'], start: iso(start), end: end === null ? null : iso(end), duration_s: 0, in_session: false, ack: null, ...p,
  }
}
function session(start: number, end: number, cancelled = false): ExamSession {
  return { id: 'x', ref: 1, org: 'O', city: 'C', site: 'S', occupation: '电工', level: '四级', start: '', end: '', start_ms: start, end_ms: end, rooms: ['*'], candidates: 0, ...(cancelled ? { cancelled: 'y' } : {}) }
}

describe('timeline bars', () => {
  const from = T0
  const to = T0 + 24 * H
  it('clips problems to the window and ends open ones at now', () => {
    const bars = buildBars(
      [problem(1, 'c1', T0 - 2 * H, T0 + H), problem(2, 'c1', T0 + 5 * H, null), problem(3, 'c2', T0 - 5 * H, T0 - H)],
      ['c1', 'c2'], from, to, T0 + 6 * H,
    )
    expect(bars.map((b) => [b.problem, b.start - T0, b.end - T0, b.open])).toEqual([
      [1, 0, H, false],
      [2, 5 * H, 6 * H, true],
    ])
  })
  it('keeps only the given cameras, and site_silent as the site row', () => {
    const bars = buildBars(
      [problem(1, 'other', T0, T0 + H), problem(2, '', T0 + H, T0 + 2 * H, { kind: 'site', faults: ['site_silent'] }), problem(3, 'net', T0, T0 + H, { kind: 'network' })],
      ['c1'], from, to, to,
    )
    expect(bars.map((b) => [b.row, b.status])).toEqual([['', 'silent']])
  })
  it('uses the worst status a problem reached', () => {
    const bars = buildBars([problem(1, 'c1', T0, T0 + H, { status: 'degraded', worst: 'down' })], ['c1'], from, to, to)
    expect(bars[0].status).toBe('down')
  })
  it('share of time with a problem counts overlaps once and includes site silence', () => {
    const bars = buildBars(
      [problem(1, 'c1', T0, T0 + 2 * H), problem(2, 'c1', T0 + H, T0 + 3 * H), problem(3, '', T0 + 10 * H, T0 + 11 * H, { kind: 'site' })],
      ['c1'], from, to, to,
    )
    expect(downShare(bars, 'c1', from, to)).toBeCloseTo(4 / 24)
  })
})

describe('session shading', () => {
  it('clips, drops cancelled sessions and merges overlaps', () => {
    const s = buildShades([session(T0 - H, T0 + H), session(T0 + 30 * 60_000, T0 + 2 * H), session(T0 + 5 * H, T0 + 6 * H, true), session(T0 + 8 * H, T0 + 9 * H)], T0, T0 + 24 * H)
    expect(s.map((x) => [x.start - T0, x.end - T0])).toEqual([
      [0, 2 * H],
      [8 * H, 9 * H],
    ])
  })
})
