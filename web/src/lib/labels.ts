// Fault, kind, status and severity names for people, from GET /api/v1/labels (the one table
// in common/result.c that docs/API.md also shows). An unknown code is shown as itself, so a
// newer agent's fault is never hidden.
import type { Labels } from '../api/types'

export type Lang = 'zh' | 'en'
export type LabelGroup = 'faults' | 'kinds' | 'statuses' | 'severities'

export const emptyLabels: Labels = { faults: {}, kinds: {}, statuses: {}, severities: {}, outcomes: {} }

export function label(labels: Labels, group: LabelGroup, code: string, lang: Lang): string {
  const t = labels[group]?.[code]
  if (!t) return code
  return (lang === 'zh' ? t.zh : t.en) || code
}

/** "黑屏、画面冻结" in Chinese, "Black picture, Frozen picture" in English. */
export function faultList(labels: Labels, faults: readonly string[], lang: Lang): string {
  return faults.map((f) => label(labels, 'faults', f, lang)).join(lang === 'zh' ? '、' : ', ')
}
