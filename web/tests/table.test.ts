import { describe, expect, it } from 'vitest'
import type { SiteSummary } from '../src/api/types'
import { defaultQuery, PAGE_SIZES, pageOf, queryVenues } from '../src/lib/table'

const sites: SiteSummary[] = [
  { site: 'jn-001', org: '技师学院', city: '济南市', last_report: '2026-12-02T03:00:00Z', cameras: { ok: 4, degraded: 0, down: 0 }, status: 'ok', open_problems: 0 },
  { site: 'jn-002', org: '职业学校', city: '济南市', last_report: '2026-12-02T02:00:00Z', cameras: { ok: 2, degraded: 0, down: 2 }, status: 'down', open_problems: 2, in_session: true },
  { site: 'jn-003', org: '技师学院', city: '济南市', last_report: '2026-12-02T01:00:00Z', cameras: { ok: 3, degraded: 1, down: 0 }, status: 'degraded', open_problems: 1 },
  { site: 'jn-004', org: '培训中心', city: '济南市', last_report: '2026-12-01T01:00:00Z', cameras: { ok: 0, degraded: 0, down: 0 }, status: 'silent', open_problems: 1 },
]
const ids = (r: SiteSummary[]) => r.map((s) => s.site)

describe('venue table', () => {
  it('sorts worst first by default', () => {
    expect(ids(queryVenues(sites, defaultQuery()))).toEqual(['jn-004', 'jn-002', 'jn-003', 'jn-001'])
  })
  it('sorts by last report either way', () => {
    expect(ids(queryVenues(sites, { ...defaultQuery(), sort: 'last_report', desc: false }))).toEqual(['jn-004', 'jn-003', 'jn-002', 'jn-001'])
    expect(ids(queryVenues(sites, { ...defaultQuery(), sort: 'down', desc: true }))[0]).toBe('jn-002')
  })
  it('filters by status and by in-session', () => {
    expect(ids(queryVenues(sites, { ...defaultQuery(), statuses: ['ok', 'degraded'] }))).toEqual(['jn-003', 'jn-001'])
    expect(ids(queryVenues(sites, { ...defaultQuery(), inSessionOnly: true }))).toEqual(['jn-002'])
  })
  it('searches site and organisation names, Chinese included, ignoring case', () => {
    expect(ids(queryVenues(sites, { ...defaultQuery(), search: '技师' }))).toEqual(['jn-003', 'jn-001'])
    expect(ids(queryVenues(sites, { ...defaultQuery(), search: ' JN-002 ' }))).toEqual(['jn-002'])
  })
  it('does not change the input', () => {
    const copy = ids(sites)
    queryVenues(sites, { ...defaultQuery(), sort: 'site', desc: true })
    expect(ids(sites)).toEqual(copy)
  })
})

describe('venue table pages', () => {
  const many = Array.from({ length: 120 }, (_, i) => i)
  it('cuts the rows into pages of the chosen size', () => {
    expect(pageOf(many, 1, 50)).toMatchObject({ page: 1, pages: 3, total: 120 })
    expect(pageOf(many, 1, 50).rows).toEqual(many.slice(0, 50))
    expect(pageOf(many, 3, 50).rows).toEqual(many.slice(100, 120))
    expect(pageOf(many, 2, 25).rows[0]).toBe(25)
  })
  it('clamps the page when the rows shrink, and never below the first', () => {
    expect(pageOf(many.slice(0, 60), 3, 50)).toMatchObject({ page: 2, pages: 2 })
    expect(pageOf(many.slice(0, 60), 3, 50).rows).toEqual(many.slice(50, 60))
    expect(pageOf([], 4, 50)).toEqual({ rows: [], page: 1, pages: 1, total: 0 })
    expect(pageOf(many, 0, 50).page).toBe(1)
  })
  it('falls back to 50 a page on a size that is not a positive integer', () => {
    expect(pageOf(many, 1, 0).rows.length).toBe(PAGE_SIZES[1])
    expect(PAGE_SIZES[1]).toBe(50)
  })
  it('pages after sorting and filtering over every venue', () => {
    const lots: SiteSummary[] = Array.from({ length: 80 }, (_, i) => ({ ...sites[0], site: `s-${String(i).padStart(3, '0')}`, status: i === 79 ? 'down' : 'ok' }))
    const first = pageOf(queryVenues(lots, defaultQuery()), 1, 25)
    expect(first.rows[0].site).toBe('s-079') // the worst venue is on page 1 though it is last in the input
    expect(pageOf(queryVenues(lots, { ...defaultQuery(), search: 's-07' }), 1, 25).total).toBe(10)
  })
})
