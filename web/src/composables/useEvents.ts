// The one live connection every page shares: an EventSource on /api/v1/events (same origin,
// the session cookie rides along). The browser resends Last-Event-ID by itself when it
// reconnects after a dropped connection; we only watch its state for the banner. A stream the
// server ended for good (401: the session ended) closes the EventSource: then we ask who we are
// and either go to the login page or open a new stream (a reload of the data, since a new
// EventSource starts without Last-Event-ID).
import { reactive, ref, shallowRef, triggerRef } from 'vue'
import { applyFrame, frameFrom, newFeed, type FeedState } from '../lib/feed'

export type ConnState = 'idle' | 'connecting' | 'open' | 'lost' | 'closed'

const TYPES = ['problem_opened', 'problem_updated', 'problem_acked', 'problem_closed', 'status', 'report', 'reload']

const feed = shallowRef<FeedState>(newFeed())
const conn = ref<ConnState>('idle')
const stats = reactive({ opens: 0, errors: 0 })
let es: EventSource | null = null
let onClosed: (() => void) | null = null

function handle(type: string, ev: MessageEvent): void {
  const f = frameFrom(type, ev.lastEventId, String(ev.data))
  if (f && applyFrame(feed.value, f, Date.now())) triggerRef(feed)
}

function open(): void {
  if (es) return
  conn.value = 'connecting'
  es = new EventSource('/api/v1/events')
  es.onopen = () => {
    stats.opens++
    conn.value = 'open'
    console.info(`vw: events open (#${stats.opens}, last id ${feed.value.lastId})`)
  }
  es.onerror = () => {
    stats.errors++
    if (!es) return
    console.info(`vw: events error, readyState ${es.readyState}, last id ${feed.value.lastId}`)
    if (es.readyState === EventSource.CLOSED) {
      es = null
      conn.value = 'closed'
      onClosed?.()
    } else conn.value = 'lost' // CONNECTING: the browser retries after retry: ms
  }
  for (const t of TYPES) es.addEventListener(t, (ev) => handle(t, ev as MessageEvent))
}

function close(): void {
  es?.close()
  es = null
  conn.value = 'idle'
  feed.value = newFeed()
}

export function useEvents() {
  return {
    feed,
    conn,
    stats,
    open,
    close,
    /** Called when the stream ended for good (not a network drop). */
    onClosed(fn: () => void) {
      onClosed = fn
    },
  }
}
