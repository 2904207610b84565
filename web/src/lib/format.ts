// Times are shown in Asia/Shanghai (UTC+8, no DST), as the exam plans and reports are.
const TZ_MS = 8 * 3600 * 1000

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0')
}

/** "2026-12-02 11:00:05" (UTC+8) from an ISO time or epoch ms; "—" for none. */
export function localTime(t: string | number | null | undefined): string {
  if (t === null || t === undefined || t === '') return '—'
  const ms = typeof t === 'number' ? t : Date.parse(t)
  if (!Number.isFinite(ms)) return String(t)
  const d = new Date(ms + TZ_MS)
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
}

/** The local date "YYYY-MM-DD" (UTC+8) of epoch ms. */
export function localDate(ms: number): string {
  return localTime(ms).slice(0, 10)
}

/** "1小时5分" / "1 h 5 min" style durations, from seconds. */
export function duration(s: number, lang: 'zh' | 'en'): string {
  s = Math.max(0, Math.round(s))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  const zh = lang === 'zh'
  const parts: string[] = []
  if (d) parts.push(zh ? `${d}天` : `${d} d`)
  if (h) parts.push(zh ? `${h}小时` : `${h} h`)
  if (m && !d) parts.push(zh ? `${m}分` : `${m} min`)
  if (!d && !h) parts.push(zh ? `${sec}秒` : `${sec} s`)
  return parts.join(zh ? '' : ' ')
}

/** Seconds since an ISO time, at now (ms). */
export function ageSeconds(iso: string | null | undefined, now: number): number | null {
  if (!iso) return null
  const t = Date.parse(iso)
  return Number.isFinite(t) ? Math.max(0, (now - t) / 1000) : null
}
