// The city view's venue table: search, filter by status, sort. Pure.
import type { SiteSummary } from '../api/types'
import { rank, siteStatus } from './status'

export type SortKey = 'status' | 'site' | 'org' | 'last_report' | 'down' | 'open_problems'
export interface TableQuery {
  search: string
  statuses: string[] // empty = all
  inSessionOnly: boolean
  sort: SortKey
  desc: boolean
}

export const defaultQuery = (): TableQuery => ({ search: '', statuses: [], inSessionOnly: false, sort: 'status', desc: true })

function cmp(a: SiteSummary, b: SiteSummary, k: SortKey): number {
  switch (k) {
    case 'status':
      return rank(siteStatus(a)) - rank(siteStatus(b))
    case 'site':
      return a.site.localeCompare(b.site)
    case 'org':
      return a.org.localeCompare(b.org)
    case 'last_report':
      return Date.parse(a.last_report || '0') - Date.parse(b.last_report || '0')
    case 'down':
      return (a.cameras?.down ?? 0) - (b.cameras?.down ?? 0)
    case 'open_problems':
      return (a.open_problems ?? 0) - (b.open_problems ?? 0)
  }
}

export function queryVenues(sites: readonly SiteSummary[], q: TableQuery): SiteSummary[] {
  const needle = q.search.trim().toLowerCase()
  const rows = sites.filter((s) => {
    if (q.statuses.length && !q.statuses.includes(siteStatus(s))) return false
    if (q.inSessionOnly && !s.in_session) return false
    if (needle && !`${s.site} ${s.org} ${s.city}`.toLowerCase().includes(needle)) return false
    return true
  })
  const dir = q.desc ? -1 : 1
  // Ties fall back to the site id so the order is stable across refreshes.
  return rows.sort((a, b) => dir * cmp(a, b, q.sort) || a.site.localeCompare(b.site))
}

// One page of the sorted, filtered rows. The city view shows a page, not all rows: 300 venues
// as Element Plus table rows took 2.7-2.9 s to render (docs/BENCHMARKS.md "Feed"). The page is
// clamped to the last one when the rows shrink (a filter, a venue gone), so the view never
// shows an empty page while rows exist.
export const PAGE_SIZES = [25, 50, 100, 200]
export interface Page<T> {
  rows: T[]
  page: number // 1-based, clamped
  pages: number // at least 1
  total: number
}
export function pageOf<T>(rows: readonly T[], page: number, size: number): Page<T> {
  const per = Number.isInteger(size) && size > 0 ? size : PAGE_SIZES[1]
  const pages = Math.max(1, Math.ceil(rows.length / per))
  const p = Math.min(Math.max(1, Number.isInteger(page) ? page : 1), pages)
  return { rows: rows.slice((p - 1) * per, p * per), page: p, pages, total: rows.length }
}
