import { describe, expect, it } from 'vitest'
import type { Problem } from '../src/api/types'
import { applyFrame, frameFrom, mergeProblems, newFeed } from '../src/lib/feed'

function problem(id: number, p: Partial<Problem> = {}): Problem {
  return {
    id, site: 'S', org: 'O', city: '济南市', agent: 'a1', kind: 'stream', target: 'cam1', state: 'open', status: 'down', worst: 'down',
    severity: 'major', faults: ['black'], start: '2026-12-02T03:00:00.000Z', end: null, duration_s: 5, in_session: false, ack: null, ...p,
  }
}

describe('feed reducer', () => {
  it('applies id-carrying events once each, in order, and counts repeats', () => {
    const s = newFeed()
    expect(applyFrame(s, { id: 1, type: 'problem_opened', data: problem(7) }, 0)).toBe(true)
    expect(applyFrame(s, { id: 2, type: 'status', data: { site: 'S', org: 'O', city: 'C', agent: 'a1', kind: 'stream', target: 'cam1', from: 'ok', to: 'down', faults: ['black'], ts: '' } }, 0)).toBe(true)
    expect(applyFrame(s, { id: 2, type: 'status', data: { site: 'S' } }, 0)).toBe(false)
    expect(applyFrame(s, { id: 1, type: 'problem_opened', data: problem(7) }, 0)).toBe(false)
    expect(s.lastId).toBe(2)
    expect(s.duplicates).toBe(2)
    expect(s.log.map((e) => e.id)).toEqual([2, 1])
    expect(s.latest.get('S|a1|stream|cam1')?.to).toBe('down')
  })
  it('applies a frame that arrives after a higher id once, and counts it out of order', () => {
    const s = newFeed()
    applyFrame(s, { id: 10, type: 'problem_opened', data: problem(10) }, 0)
    expect(applyFrame(s, { id: 8, type: 'problem_opened', data: problem(8) }, 0)).toBe(true)
    expect(applyFrame(s, { id: 8, type: 'problem_opened', data: problem(8) }, 0)).toBe(false)
    expect(s.lastId).toBe(10)
    expect(s.outOfOrder).toBe(1)
    expect(s.duplicates).toBe(1)
    expect(s.problems.has(8)).toBe(true)
  })
  it('a later event of a problem replaces its state', () => {
    const s = newFeed()
    applyFrame(s, { id: 1, type: 'problem_opened', data: problem(7) }, 0)
    applyFrame(s, { id: 3, type: 'problem_closed', data: problem(7, { state: 'closed', status: 'ok', end: '2026-12-02T03:05:00.000Z' }) }, 0)
    expect(s.problems.get(7)?.state).toBe('closed')
  })
  it('keeps report events out of the log and the id sequence', () => {
    const s = newFeed()
    applyFrame(s, { id: 5, type: 'status', data: { site: 'S', agent: 'a', kind: 'stream', target: 'c', to: 'down' } }, 0)
    // EventSource repeats the last id on a frame without one: frameFrom must not take it.
    const f = frameFrom('report', '5', '{"site":"S","city":"C","acked_seq":9,"ok":1,"degraded":0,"down":0}')!
    expect(f.id).toBeNull()
    expect(applyFrame(s, f, 0)).toBe(true)
    expect(s.log.length).toBe(1)
    expect(s.reports.get('S')?.acked_seq).toBe(9)
    expect(s.lastId).toBe(5)
  })
  it('a reload clears what the feed knew and is counted for the pages to refetch', () => {
    const s = newFeed()
    applyFrame(s, { id: 1, type: 'problem_opened', data: problem(7) }, 0)
    applyFrame(s, frameFrom('reload', '1', '{"reason":"behind_window"}')!, 0)
    expect(s.reloads).toBe(1)
    expect(s.problems.size).toBe(0)
  })
  it('ignores frames whose data is not JSON or has no site', () => {
    expect(frameFrom('status', '3', 'not json')).toBeNull()
    const s = newFeed()
    expect(applyFrame(s, { id: 4, type: 'status', data: { to: 'down' } }, 0)).toBe(false)
  })
  it('bounds the log', () => {
    const s = newFeed(3)
    for (let i = 1; i <= 10; i++) applyFrame(s, { id: i, type: 'problem_opened', data: problem(i) }, 0)
    expect(s.log.map((e) => e.id)).toEqual([10, 9, 8])
  })
  it('merges the feed’s newer problem state over a fetched list, newest start first', () => {
    const s = newFeed()
    applyFrame(s, { id: 1, type: 'problem_acked', data: problem(1, { ack: { by: 'x', at: '', message: 'm' } }) }, 0)
    applyFrame(s, { id: 2, type: 'problem_opened', data: problem(2, { start: '2026-12-02T04:00:00.000Z' }) }, 0)
    const rows = mergeProblems([problem(1)], s, () => true)
    expect(rows.map((p) => p.id)).toEqual([2, 1])
    expect(rows[1].ack?.by).toBe('x')
  })
})
