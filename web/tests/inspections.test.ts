import { describe, expect, it } from 'vitest'
import type { Inspection, InspectionDetail } from '../src/api/types'
import {
  canConfirm,
  canRecord,
  isOverdue,
  outcomeIds,
  publicDrawUrl,
  siteLink,
  sortByUrgency,
  todayLocal,
  validateResult,
  formFrom,
} from '../src/lib/inspections'

function insp(over: Partial<InspectionDetail>): InspectionDetail {
  return { id: 1, draw: 'jn', seq: 1, org: 'org-a', city: '济南市', mode: 'onsite', slot: { session: 17, site: 'site-a1', start: '2026-12-07T01:00:00.000Z', end: '2026-12-07T03:00:00.000Z' }, finding: '', state: 'assigned', ...over }
}

// 2026-12-02 15:59:59Z is 23:59:59 in Jinan; a second later it is the 3rd.
const LATE_ON_2ND = Date.parse('2026-12-02T15:59:59Z')
const START_OF_3RD = Date.parse('2026-12-02T16:00:00Z')

describe('inspections: due dates', () => {
  it('takes today in Asia/Shanghai', () => {
    expect(todayLocal(LATE_ON_2ND)).toBe('2026-12-02')
    expect(todayLocal(START_OF_3RD)).toBe('2026-12-03')
  })
  it('is overdue only after the due day and never once published', () => {
    expect(isOverdue(insp({ due: '2026-12-02' }), LATE_ON_2ND)).toBe(false)
    expect(isOverdue(insp({ due: '2026-12-02' }), START_OF_3RD)).toBe(true)
    expect(isOverdue(insp({ due: '2026-12-02', state: 'published' }), START_OF_3RD)).toBe(false)
    expect(isOverdue(insp({ due: null }), START_OF_3RD)).toBe(false)
  })
  it("follows the server's flag when it sends one", () => {
    expect(isOverdue(insp({ due: '2026-12-02', overdue: false }), START_OF_3RD)).toBe(false)
    expect(isOverdue(insp({ due: '2027-01-01', overdue: true }), START_OF_3RD)).toBe(true)
  })
  it('sorts overdue first, then by due date, none last', () => {
    const rows: Inspection[] = [
      insp({ id: 1, due: '2026-12-20' }),
      insp({ id: 2, due: null }),
      insp({ id: 3, due: '2026-11-01' }),
      insp({ id: 4, due: '2026-12-10' }),
      insp({ id: 5, due: '2026-11-20' }),
    ]
    expect(sortByUrgency(rows, START_OF_3RD).map((r) => r.id)).toEqual([3, 5, 4, 1, 2])
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]) // the input is left alone
  })
})

describe('inspections: draws', () => {
  it('links the public page from commit on', () => {
    expect(publicDrawUrl({ id: 'jn-2026-12', state: 'created' })).toBeNull()
    expect(publicDrawUrl({ id: 'jn-2026-12', state: 'committed' })).toBe('/public/draws/jn-2026-12')
    expect(publicDrawUrl({ id: 'a b', state: 'published' })).toBe('/public/draws/a%20b')
  })
})

describe('inspections: the result form', () => {
  it('starts from the recorded result', () => {
    expect(formFrom(null)).toEqual({ outcome: '', findings: '', note: '' })
    expect(formFrom(insp({ result: { outcome: 'rectify', findings: 'f', note: 'n', recorded_by: 'I001' } }))).toEqual({
      outcome: 'rectify',
      findings: 'f',
      note: 'n',
    })
  })
  it('offers the server outcomes, else the defaults', () => {
    expect(outcomeIds(null)).toEqual(['clear', 'rectify', 'refer'])
    expect(outcomeIds({ outcomes: [{ id: 'ok', label: '合格' }] })).toEqual(['ok'])
  })
  it('needs an outcome, and findings unless nothing was found', () => {
    const o = ['clear', 'rectify', 'refer']
    expect(validateResult({ outcome: '', findings: '', note: '' }, o)).toEqual({ outcome: 'required' })
    expect(validateResult({ outcome: 'clear', findings: '', note: '' }, o)).toEqual({})
    expect(validateResult({ outcome: 'rectify', findings: '  ', note: '' }, o)).toEqual({ findings: 'required' })
    expect(validateResult({ outcome: 'rectify', findings: '监控缺失', note: '' }, o)).toEqual({})
    expect(validateResult({ outcome: 'bogus', findings: 'x', note: '' }, o)).toEqual({ outcome: 'required' })
    expect(validateResult({ outcome: 'clear', findings: 'x'.repeat(4001), note: '' }, o)).toEqual({ findings: 'too_long' })
  })
  it('lets an active member record while assigned or recorded', () => {
    const members = [{ id: 'I001', active: true }, { id: 'I002', active: false, replaced_by: 'I003' }, { id: 'I003' }]
    expect(canRecord(insp({ inspectors: members }), 'I001')).toBe(true)
    expect(canRecord(insp({ inspectors: members }), 'I003')).toBe(true)
    expect(canRecord(insp({ inspectors: members }), 'I002')).toBe(false) // replaced
    expect(canRecord(insp({ inspectors: members }), 'I009')).toBe(false)
    expect(canRecord(insp({ inspectors: members, state: 'recorded' }), 'I001')).toBe(true)
    expect(canRecord(insp({ inspectors: members, state: 'confirmed' }), 'I001')).toBe(false)
  })
  it('lets each member confirm the current result version once', () => {
    const d = insp({
      state: 'recorded',
      result_version: 2,
      inspectors: [{ id: 'I001' }, { id: 'I003' }],
      confirmations: [{ inspector: 'I001', result_version: 2 }, { inspector: 'I003', result_version: 1 }],
    })
    expect(canConfirm(d, 'I001')).toBe(false) // already, at version 2
    expect(canConfirm(d, 'I003')).toBe(true) // his was of version 1
    expect(canConfirm({ ...d, state: 'assigned' }, 'I003')).toBe(false)
    expect(canConfirm({ ...d, result_version: 0 }, 'I003')).toBe(false)
  })
  it("links the site's live view only during the visit", () => {
    expect(siteLink(insp({ state: 'assigned' }))).toBe('/site/site-a1')
    expect(siteLink(insp({ state: 'recorded' }))).toBe('/site/site-a1')
    expect(siteLink(insp({ state: 'confirmed' }))).toBeNull()
    expect(siteLink(insp({ slot: null }))).toBeNull()
  })
})
