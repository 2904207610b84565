// The collector's JSON, as docs/API.md and the issue-16 contract describe it. Fields that
// another part of issue 16 adds are optional here, so the dashboard works against a server
// that does not have them yet (and shows "unknown" for them).

export type Status = 'ok' | 'degraded' | 'down'
export type SiteStatus = Status | 'silent' | 'unknown'
export type Criterion = 'connected' | 'network' | 'picture' | 'coverage' | 'recordings'
export type CriterionStatus = Status | 'unknown'

export interface Me {
  role: string
  city: string
  org: string
  name: string
  inspector?: string // issue 12: an inspector token's roster id
  token: string
  token_expires: string
  via: 'session' | 'bearer'
  expires: string
  idle_expires?: string
  idle_timeout_s?: number
}

export interface SiteSummary {
  site: string
  org: string
  city: string
  last_report: string
  cameras: { ok: number; degraded: number; down: number }
  status?: SiteStatus
  in_session?: boolean
  open_problems?: number
  criteria?: Partial<Record<Criterion, CriterionStatus>>
}

export interface Target {
  kind: string
  target: string
  agent: string
  status: Status
  faults: string[]
  metrics: Record<string, number>
  ts: string
  seq: number
  session?: string
  codec?: string
  thumbnail_at?: string | null
}

export interface SiteDetail extends SiteSummary {
  targets: Target[]
}

export interface Ack {
  by: string
  at: string
  message: string
}

export interface Problem {
  id: number
  site: string
  org: string
  city: string
  agent: string
  kind: string
  target: string
  state: 'open' | 'closed'
  status: Status | string
  worst: string
  severity: 'minor' | 'major' | 'critical' | string
  faults: string[]
  start: string
  end: string | null
  duration_s: number
  in_session: boolean
  ack: Ack | null
}

export interface ProblemPage {
  problems: Problem[]
  next_cursor: string | null
}

export interface ExamSession {
  id: string
  ref: number
  org: string
  city: string
  site: string
  occupation: string
  level: string
  start: string
  end: string
  start_ms: number
  end_ms: number
  rooms: string[]
  candidates: number
  cancelled?: string
}

export interface LabelText {
  zh: string
  en: string
}
export interface Labels {
  faults: Record<string, LabelText>
  kinds: Record<string, LabelText>
  statuses: Record<string, LabelText>
  severities: Record<string, LabelText>
  outcomes?: Record<string, LabelText>
}

/** A status change as the `status` event carries it. */
export interface StatusChange {
  site: string
  org: string
  city: string
  agent: string
  kind: string
  target: string
  from: string | null
  to: string
  faults: string[]
  ts: string
}

export interface ReportEvent {
  site: string
  org: string
  city: string
  agent: string
  acked_seq: number
  ok: number
  degraded: number
  down: number
}

// --- issue 12: draws and inspections (docs/API.md "Draws", "Inspections") ---

export interface Draw {
  id: string
  scope_city: string
  state: 'created' | 'committed' | 'executed' | 'published'
  created?: string | null
  committed?: string | null
  executed?: string | null
  published?: string | null
  manifest_sha256?: string | null
}

export interface InspectionMember {
  id: string
  name?: string
  active?: boolean
  replaced_by?: string
}

export interface InspectionSlot {
  session: number
  site: string
  start: string | null
  end: string | null
}

export interface Inspection {
  id: number
  draw: string
  seq: number
  org: string
  city: string
  mode: 'onsite' | 'remote'
  slot: InspectionSlot | null
  finding: string
  state: 'assigned' | 'recorded' | 'confirmed' | 'published'
  result_version?: number
  outcome?: string
  // helper E's calendar (inspect_due): absent until the inspections API sends them
  due?: string | null
  overdue?: boolean
}

export interface Evidence {
  id: number
  kind: string
  camera?: string
  captured: string | null
  bytes?: number
  href?: string
}

export interface InspectionDetail extends Inspection {
  result?: { outcome: string; findings: string; note: string; recorded_by: string; recorded?: string | null }
  confirmed?: string | null
  published?: string | null
  inspectors?: InspectionMember[]
  confirmations?: { inspector: string; result_version: number; at?: string | null }[]
  evidence?: Evidence[]
  outcomes?: { id: string; label: string }[]
}
