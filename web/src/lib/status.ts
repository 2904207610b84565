// Status arithmetic shared by the pages: worst-of, a site's status from its targets, and the
// per-city counts of the province overview.
import type { SiteStatus, SiteSummary, Status, Target } from '../api/types'

const RANK: Record<string, number> = { ok: 0, unknown: 1, degraded: 2, down: 3, silent: 4 }

export function rank(s: string): number {
  return RANK[s] ?? 1
}

export function worst<T extends string>(a: T, b: T): T {
  return rank(b) > rank(a) ? b : a
}

/** A site's status: the server's when it says one (issue 16 E), else the worst camera count. */
export function siteStatus(s: SiteSummary): SiteStatus {
  if (s.status) return s.status
  const c = s.cameras
  if (!c || c.ok + c.degraded + c.down === 0) return 'unknown'
  if (c.down > 0) return 'down'
  if (c.degraded > 0) return 'degraded'
  return 'ok'
}

/** Worst status over targets (empty → unknown). */
export function worstOf(targets: readonly { status: string }[]): Status | 'unknown' {
  let w: Status | 'unknown' = 'unknown'
  for (const t of targets) {
    const s = t.status as Status
    w = w === 'unknown' ? s : worst(w, s)
  }
  return w
}

export interface CityRow {
  city: string
  venues: number
  ok: number
  degraded: number
  down: number
  silent: number
  unknown: number
  open_problems: number
  in_session: number
  worst: SiteStatus
}

/** One row per city, sorted by how bad it is (worst first), then by name. */
export function citySummary(sites: readonly SiteSummary[]): CityRow[] {
  const by = new Map<string, CityRow>()
  for (const s of sites) {
    let r = by.get(s.city)
    if (!r) {
      r = { city: s.city, venues: 0, ok: 0, degraded: 0, down: 0, silent: 0, unknown: 0, open_problems: 0, in_session: 0, worst: 'ok' }
      by.set(s.city, r)
    }
    const st = siteStatus(s)
    r.venues++
    r[st]++
    r.open_problems += s.open_problems ?? 0
    if (s.in_session) r.in_session++
    r.worst = worst(r.worst, st)
  }
  return [...by.values()].sort((a, b) => rank(b.worst) - rank(a.worst) || a.city.localeCompare(b.city, 'zh-CN'))
}

/** Rooms of a venue page: stream targets grouped by the agent's room (coverage targets name the
 * rooms; a camera's room is not in its result, so cameras are matched by "ROOM-..." prefix when
 * a coverage target of that name exists, else they go under "其他"/other). */
export function groupCameras(targets: readonly Target[]): { room: string; coverage?: Target; cameras: Target[] }[] {
  const rooms = targets.filter((t) => t.kind === 'coverage').map((t) => t.target)
  rooms.sort((a, b) => b.length - a.length) // longest prefix wins: "hall-10" before "hall-1"
  const out = new Map<string, { room: string; coverage?: Target; cameras: Target[] }>()
  for (const t of targets.filter((x) => x.kind === 'coverage'))
    out.set(t.target, { room: t.target, coverage: t, cameras: [] })
  const other: Target[] = []
  for (const t of targets) {
    if (t.kind !== 'stream') continue
    const room = rooms.find((r) => t.target === r || t.target.startsWith(r + '-') || t.target.startsWith(r + '_'))
    if (room) out.get(room)!.cameras.push(t)
    else other.push(t)
  }
  const list = [...out.values()].sort((a, b) => a.room.localeCompare(b.room))
  for (const r of list) r.cameras.sort((a, b) => a.target.localeCompare(b.target))
  if (other.length) list.push({ room: '', cameras: other.sort((a, b) => a.target.localeCompare(b.target)) })
  return list
}
