// Data a page fetches once and refetches when the feed says something changed (a status or
// problem event, a report of its scope, a reload), at most once per `minGapMs`.
import { onBeforeUnmount, onMounted, ref, shallowRef, watch, type Ref } from 'vue'
import { useEvents } from './useEvents'
import type { FeedState } from '../lib/feed'

export function useLive<T>(fetcher: () => Promise<T>, relevant: (f: FeedState) => unknown, minGapMs = 2000) {
  const data = shallowRef<T | null>(null) as Ref<T | null>
  const error = ref('')
  const loading = ref(true)
  const { feed } = useEvents()
  let last = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  let inflight = false
  let again = false

  async function load() {
    if (inflight) {
      again = true
      return
    }
    inflight = true
    last = Date.now()
    try {
      data.value = await fetcher()
      error.value = ''
    } catch (e) {
      error.value = (e as Error).message
    } finally {
      inflight = false
      loading.value = false
      if (again) {
        again = false
        schedule()
      }
    }
  }
  function schedule() {
    if (timer) return
    const wait = Math.max(0, last + minGapMs - Date.now())
    timer = setTimeout(() => {
      timer = null
      void load()
    }, wait)
  }
  onMounted(load)
  watch(() => relevant(feed.value), schedule)
  watch(() => feed.value.reloads, () => void load())
  onBeforeUnmount(() => timer && clearTimeout(timer))
  return { data, error, loading, reload: load }
}

/** A fingerprint of the feed's events for a scope, for useLive's `relevant`. */
export function scopeStamp(f: FeedState, match: (site: string, city: string) => boolean): string {
  let n = 0
  for (const e of f.log) if (match(e.site, e.city)) n = Math.max(n, e.id ?? 0)
  let r = ''
  for (const [site, rep] of f.reports) if (match(site, rep.city)) r += `${site}:${rep.acked_seq};`
  return `${n}|${r}`
}
