import { describe, expect, it } from 'vitest'
import type { SiteSummary, Target } from '../src/api/types'
import { citySummary, groupCameras, siteStatus, worstOf } from '../src/lib/status'

function site(p: Partial<SiteSummary> & { site: string; city: string }): SiteSummary {
  return { org: 'o', last_report: '2026-12-02T03:00:00.000Z', cameras: { ok: 2, degraded: 0, down: 0 }, ...p }
}

describe('site status', () => {
  it('takes the server’s status when given', () => {
    expect(siteStatus(site({ site: 'a', city: 'c', status: 'silent' }))).toBe('silent')
  })
  it('falls back to the worst camera count', () => {
    expect(siteStatus(site({ site: 'a', city: 'c', cameras: { ok: 3, degraded: 1, down: 0 } }))).toBe('degraded')
    expect(siteStatus(site({ site: 'a', city: 'c', cameras: { ok: 3, degraded: 1, down: 1 } }))).toBe('down')
    expect(siteStatus(site({ site: 'a', city: 'c', cameras: { ok: 0, degraded: 0, down: 0 } }))).toBe('unknown')
  })
  it('worstOf orders ok < degraded < down', () => {
    expect(worstOf([{ status: 'ok' }, { status: 'down' }, { status: 'degraded' }])).toBe('down')
    expect(worstOf([])).toBe('unknown')
  })
})

describe('city summary', () => {
  const sites = [
    site({ site: 's1', city: '济南市', status: 'ok', open_problems: 0, in_session: true }),
    site({ site: 's2', city: '济南市', status: 'down', open_problems: 2 }),
    site({ site: 's3', city: '青岛市', status: 'silent', open_problems: 1, in_session: true }),
    site({ site: 's4', city: '青岛市', status: 'degraded', open_problems: 1 }),
    site({ site: 's5', city: '淄博市', status: 'ok' }),
  ]
  it('counts venues per status, open problems and sessions per city', () => {
    const rows = citySummary(sites)
    const jn = rows.find((r) => r.city === '济南市')!
    expect(jn).toMatchObject({ venues: 2, ok: 1, down: 1, degraded: 0, silent: 0, open_problems: 2, in_session: 1, worst: 'down' })
    const qd = rows.find((r) => r.city === '青岛市')!
    expect(qd).toMatchObject({ venues: 2, silent: 1, degraded: 1, open_problems: 2, in_session: 1, worst: 'silent' })
  })
  it('lists the worst city first', () => {
    expect(citySummary(sites).map((r) => r.city)).toEqual(['青岛市', '济南市', '淄博市'])
  })
})

describe('rooms', () => {
  const t = (kind: string, target: string, status = 'ok'): Target =>
    ({ kind, target, agent: 'a', status, faults: [], metrics: {}, ts: '', seq: 1 }) as Target
  it('puts cameras under the room their name starts with, longest room first', () => {
    const g = groupCameras([t('coverage', 'hall-1'), t('coverage', 'hall-10'), t('stream', 'hall-10-front'), t('stream', 'hall-1-back'), t('stream', 'gate'), t('network', 'collector')])
    expect(g.map((r) => [r.room, r.cameras.map((c) => c.target)])).toEqual([
      ['hall-1', ['hall-1-back']],
      ['hall-10', ['hall-10-front']],
      ['', ['gate']],
    ])
  })
})
