// The live feed's state, reduced from Server-Sent Events (GET /api/v1/events). Pure: the
// composable (useEvents) feeds it frames and pages read it. Events with an id are applied once
// each and in order (a resumed stream may repeat nothing, but a frame seen twice — a reconnect
// racing a reload — must not show twice); events without an id (report, reload) are ephemeral.
import type { Problem, ReportEvent, StatusChange } from '../api/types'

export interface FeedFrame {
  id: number | null // null: no id: field (ephemeral)
  type: string
  data: unknown
}

export interface LogEntry {
  id: number | null
  type: string
  ts: number // when received (ms)
  site: string
  city: string
  summary: { kind?: string; target?: string; from?: string | null; to?: string; faults?: string[]; problem?: number; severity?: string }
}

export interface FeedState {
  lastId: number // highest id applied; 0 = none yet
  log: LogEntry[] // newest first, at most logMax
  logMax: number
  problems: Map<number, Problem> // problems seen on the feed (open and recently closed)
  latest: Map<string, StatusChange> // site|agent|kind|target → last change seen
  reports: Map<string, ReportEvent> // site → last report
  reloads: number // reload events seen: pages refetch when this moves
  duplicates: number // id-carrying frames ignored because already applied
  outOfOrder: number // id-carrying frames applied although a higher id came first
  seen: Set<number> // the last SEEN_MAX ids applied (insertion order), for duplicates
}

/** Ids remembered for duplicate checks: far more than a resume replays at once. */
export const SEEN_MAX = 10000

export function newFeed(logMax = 500): FeedState {
  return { lastId: 0, log: [], logMax, problems: new Map(), latest: new Map(), reports: new Map(), reloads: 0, duplicates: 0, outOfOrder: 0, seen: new Set() }
}

export function targetKey(t: { site: string; agent: string; kind: string; target: string }): string {
  return `${t.site}|${t.agent}|${t.kind}|${t.target}`
}

export const EPHEMERAL = new Set(['report', 'reload'])
const PROBLEM_EVENTS = new Set(['problem_opened', 'problem_updated', 'problem_acked', 'problem_closed'])

function pushLog(s: FeedState, e: LogEntry): void {
  s.log.unshift(e)
  if (s.log.length > s.logMax) s.log.length = s.logMax
}

/** Applies one frame; returns false when it was ignored (a repeat, or data of the wrong shape). */
export function applyFrame(s: FeedState, f: FeedFrame, now: number): boolean {
  if (f.id !== null) {
    // A repeat is recognised by its id, not by being below the highest: a frame that comes
    // late (a resume's replay overtaken by a live event) is still applied once.
    if (s.seen.has(f.id)) {
      s.duplicates++
      return false
    }
    s.seen.add(f.id)
    if (s.seen.size > SEEN_MAX) s.seen.delete(s.seen.values().next().value as number)
    if (f.id < s.lastId) s.outOfOrder++
    else s.lastId = f.id
  }
  const d = (f.data ?? {}) as Record<string, unknown>
  if (f.type === 'reload') {
    s.reloads++
    s.problems.clear()
    s.latest.clear()
    pushLog(s, { id: f.id, type: f.type, ts: now, site: '', city: '', summary: {} })
    return true
  }
  if (typeof d.site !== 'string') return false
  const base = { id: f.id, type: f.type, ts: now, site: d.site, city: typeof d.city === 'string' ? d.city : '' }
  if (PROBLEM_EVENTS.has(f.type)) {
    const p = d as unknown as Problem
    if (typeof p.id !== 'number') return false
    s.problems.set(p.id, p)
    pushLog(s, { ...base, summary: { kind: p.kind, target: p.target, to: p.status, faults: p.faults, problem: p.id, severity: p.severity } })
    return true
  }
  if (f.type === 'status') {
    const c = d as unknown as StatusChange
    s.latest.set(targetKey(c), c)
    pushLog(s, { ...base, summary: { kind: c.kind, target: c.target, from: c.from, to: c.to, faults: c.faults } })
    return true
  }
  if (f.type === 'report') {
    s.reports.set(d.site, d as unknown as ReportEvent)
    return true // many per minute: counted, not logged
  }
  pushLog(s, { ...base, summary: {} })
  return true
}

/** Open problems from the feed merged over a fetched list (the feed's newer state wins). */
export function mergeProblems(fetched: readonly Problem[], feed: FeedState, filter: (p: Problem) => boolean): Problem[] {
  const by = new Map<number, Problem>()
  for (const p of fetched) by.set(p.id, p)
  for (const p of feed.problems.values()) if (filter(p)) by.set(p.id, p)
  return [...by.values()].sort((a, b) => Date.parse(b.start) - Date.parse(a.start) || b.id - a.id)
}

/** Parses an SSE frame's fields as EventSource delivers them (lastEventId is '' without id:). */
export function frameFrom(type: string, lastEventId: string, data: string): FeedFrame | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(data)
  } catch {
    return null
  }
  // EventSource keeps the last id for frames without one: report and reload carry none.
  const id = EPHEMERAL.has(type) || !/^\d+$/.test(lastEventId) ? null : Number(lastEventId)
  return { id, type, data: parsed }
}
