// 双随机抽查 on the dashboard (issue 12 E): the logic of the inspections pages, kept out of
// the .vue files so Vitest covers it. The shapes are docs/API.md "Draws" / "Inspections";
// fields another part adds later are optional, and the server's due/overdue win when present.
import type { Draw, Inspection, InspectionDetail } from '../api/types'

export const DRAW_STATES = ['created', 'committed', 'executed', 'published'] as const
export const INSPECTION_STATES = ['assigned', 'recorded', 'confirmed', 'published'] as const

/** The local (UTC+8) date "YYYY-MM-DD" of epoch ms. */
export function todayLocal(nowMs: number): string {
  return new Date(nowMs + 8 * 3600 * 1000).toISOString().slice(0, 10)
}

/** Overdue as the server defines it: not published and today (local) after the due date.
 *  The server's own flag is used when it sent one. */
export function isOverdue(i: Pick<Inspection, 'state' | 'due' | 'overdue'>, nowMs: number): boolean {
  if (typeof i.overdue === 'boolean') return i.overdue
  if (!i.due || i.state === 'published') return false
  return todayLocal(nowMs) > i.due
}

/** Overdue first, then by due date (none last), then by id: what needs doing comes first. */
export function sortByUrgency<T extends Inspection>(rows: T[], nowMs: number): T[] {
  return [...rows].sort((a, b) => {
    const oa = isOverdue(a, nowMs) ? 0 : 1
    const ob = isOverdue(b, nowMs) ? 0 : 1
    if (oa !== ob) return oa - ob
    const da = a.due || '9999-99-99'
    const db = b.due || '9999-99-99'
    if (da !== db) return da < db ? -1 : 1
    return a.id - b.id
  })
}

/** The public page of a draw: there from commit on (docs/API.md "Public"). */
export function publicDrawUrl(d: Pick<Draw, 'id' | 'state'>): string | null {
  return d.state === 'created' ? null : `/public/draws/${encodeURIComponent(d.id)}`
}

/** The state's tag colour for Element Plus. */
export function stateTagType(state: string): 'info' | 'warning' | 'success' | 'primary' | 'danger' {
  switch (state) {
    case 'assigned':
    case 'committed':
      return 'warning'
    case 'recorded':
    case 'executed':
      return 'primary'
    case 'confirmed':
    case 'published':
      return 'success'
    default:
      return 'info'
  }
}

/** The outcomes the result form offers: the server's list when it sent one, else the
 *  [inspection] defaults. */
export function outcomeIds(detail?: Pick<InspectionDetail, 'outcomes'> | null): string[] {
  const o = detail?.outcomes
  if (o && o.length) return o.map((x) => x.id)
  return ['clear', 'rectify', 'refer']
}

export interface ResultForm {
  outcome: string
  findings: string
  note: string
}

/** The result form's errors by field (empty: it may be sent). */
export function validateResult(f: ResultForm, outcomes: string[]): Partial<Record<keyof ResultForm, string>> {
  const e: Partial<Record<keyof ResultForm, string>> = {}
  if (!outcomes.includes(f.outcome)) e.outcome = 'required'
  if (f.outcome && f.outcome !== 'clear' && !f.findings.trim()) e.findings = 'required'
  if (f.findings.length > 4000) e.findings = 'too_long'
  if (f.note.length > 4000) e.note = 'too_long'
  return e
}

/** An active inspector of this inspection (the one who may record and confirm). */
export function isActiveMember(d: Pick<InspectionDetail, 'inspectors'>, me: string): boolean {
  return (d.inspectors ?? []).some((p) => p.id === me && p.active !== false)
}

/** May `me` record (or re-record) a result: an active member while assigned or recorded. */
export function canRecord(d: InspectionDetail, me: string): boolean {
  return isActiveMember(d, me) && (d.state === 'assigned' || d.state === 'recorded')
}

/** May `me` confirm: an active member, a recorded result, and not confirmed by him yet at
 *  the current result_version. */
export function canConfirm(d: InspectionDetail, me: string): boolean {
  if (!isActiveMember(d, me) || d.state !== 'recorded' || !d.result_version) return false
  return !(d.confirmations ?? []).some((c) => c.inspector === me && c.result_version === d.result_version)
}

/** The live view of the inspection's site (only while the inspector may see it). */
export function siteLink(d: Pick<InspectionDetail, 'slot' | 'state'>): string | null {
  const site = d.slot?.site
  if (!site || (d.state !== 'assigned' && d.state !== 'recorded')) return null
  return `/site/${encodeURIComponent(site)}`
}

/** The result form's starting values: the recorded result, else empty. */
export function formFrom(d: Pick<InspectionDetail, 'result'> | null): ResultForm {
  return { outcome: d?.result?.outcome ?? '', findings: d?.result?.findings ?? '', note: d?.result?.note ?? '' }
}
