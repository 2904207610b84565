// Labels for codes, fetched once at start from GET /api/v1/labels (anonymous, cacheable).
import { computed, shallowRef } from 'vue'
import { useI18n } from 'vue-i18n'
import { api } from '../api/client'
import type { Labels } from '../api/types'
import { emptyLabels, faultList, label, type LabelGroup } from '../lib/labels'

const labels = shallowRef<Labels>(emptyLabels)
let loading: Promise<void> | null = null

export function loadLabels(): Promise<void> {
  if (!loading)
    loading = api
      .labels()
      .then((l) => {
        labels.value = { ...emptyLabels, ...l }
      })
      .catch(() => {
        loading = null // shown as codes until a later page load gets them
      })
  return loading
}

export function useLabels() {
  const { locale } = useI18n()
  const lang = computed(() => (locale.value === 'en' ? 'en' : 'zh') as 'zh' | 'en')
  return {
    labels,
    lang,
    l: (group: LabelGroup, code: string) => label(labels.value, group, code, lang.value),
    faults: (f: readonly string[]) => faultList(labels.value, f, lang.value),
  }
}
