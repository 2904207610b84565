// One function per endpoint the dashboard uses (docs/API.md). Every request goes to the
// page's own origin, carried by the HttpOnly session cookie; nothing else is ever fetched.
import type {
  Draw,
  ExamSession,
  Inspection,
  InspectionDetail,
  Labels,
  Me,
  Problem,
  ProblemPage,
  SiteDetail,
  SiteSummary,
} from './types'

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public field?: string,
  ) {
    super(message)
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  }
  if (body !== undefined) {
    init.headers = { ...init.headers, 'Content-Type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  const r = await fetch(path, init)
  const text = await r.text()
  let json: unknown = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {
    json = null
  }
  if (!r.ok) {
    const e = (json ?? {}) as { error?: string; field?: string }
    throw new ApiError(r.status, e.error || `${r.status} ${r.statusText}`, e.field)
  }
  return json as T
}

function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v))
  const s = u.toString()
  return s ? `?${s}` : ''
}

export const api = {
  /** Trades a token for the session cookie (the token travels in the body, never a URL). */
  login: (token: string) => call<Me>('POST', '/api/v1/session', { token }),
  me: () => call<Me>('GET', '/api/v1/session'),
  logout: () => call<unknown>('DELETE', '/api/v1/session'),
  labels: () => call<Labels>('GET', '/api/v1/labels'),
  // city: only that city's venues (a server without the filter answers with all: callers filter too).
  sites: (city?: string) => call<{ sites: SiteSummary[] }>('GET', `/api/v1/sites${qs({ city })}`).then((r) => r.sites),
  site: (site: string) => call<SiteDetail>('GET', `/api/v1/sites/${encodeURIComponent(site)}`),
  problems: (p: { state?: string; city?: string; site?: string; from?: string; to?: string; limit?: number; cursor?: string }) =>
    call<ProblemPage>('GET', `/api/v1/problems${qs(p)}`),
  ack: (id: number, message: string) => call<Problem>('POST', `/api/v1/problems/${id}/ack`, { message }),
  sessions: (p: { site?: string; org?: string; from?: string; to?: string }) =>
    call<{ sessions: ExamSession[] }>('GET', `/api/v1/sessions${qs(p)}`).then((r) => r.sessions),
  thumbnailUrl: (site: string, camera: string, at?: string) =>
    `/api/v1/sites/${encodeURIComponent(site)}/cameras/${encodeURIComponent(camera)}/thumbnail${qs({ at })}`,
  reportUrl: (org: string, from: string, to: string) =>
    `/api/v1/orgs/${encodeURIComponent(org)}/report.html${qs({ from, to })}`,
  // issue 12: draws and inspections (docs/API.md "Draws", "Inspections").
  draws: () => call<{ draws: Draw[] }>('GET', '/api/v1/draws').then((r) => r.draws),
  inspections: (p: { draw?: string; state?: string; org?: string; after?: number; limit?: number }) =>
    call<{ inspections: Inspection[]; next: number | null }>('GET', `/api/v1/inspections${qs(p)}`),
  inspection: (id: number) => call<InspectionDetail>('GET', `/api/v1/inspections/${id}`),
  recordResult: (id: number, r: { outcome: string; findings: string; note: string }) =>
    call<unknown>('POST', `/api/v1/inspections/${id}/result`, r),
  confirmResult: (id: number, resultVersion: number) =>
    call<unknown>('POST', `/api/v1/inspections/${id}/confirm`, { result_version: resultVersion }),
  evidenceUrl: (id: number, eid: number) => `/api/v1/inspections/${id}/evidence/${eid}`,
}

/** Every inspection the asker may see (paged by id), up to max rows. */
export async function allInspections(p: { draw?: string; state?: string; org?: string }, max = 5000): Promise<Inspection[]> {
  const out: Inspection[] = []
  let after: number | undefined
  for (;;) {
    const page = await api.inspections({ ...p, after, limit: 500 })
    out.push(...page.inspections)
    const next = page.next ?? null
    if (next === null || !page.inspections.length || out.length >= max) return out
    after = next
  }
}

/** Every page of problems (cursor-paged), up to max rows. */
export async function allProblems(
  p: { state?: string; city?: string; site?: string; from?: string; to?: string },
  max = 5000,
): Promise<Problem[]> {
  const out: Problem[] = []
  let cursor: string | undefined
  do {
    const page = await api.problems({ ...p, limit: 1000, cursor })
    out.push(...page.problems)
    cursor = page.next_cursor ?? undefined
  } while (cursor && out.length < max)
  return out
}
