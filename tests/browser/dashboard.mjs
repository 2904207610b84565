// The dashboard in a real browser: Debian's Chromium driven by playwright-core (from
// web/node_modules) against the server, agents and camd that test_dashboard.py started.
// Process control stays in Python: this script asks for it with one JSON line on stdout
// (`@@ {"ask": ...}`) and reads the answer as one JSON line on stdin. Everything else it
// prints goes to stderr. Exit 0 = every check passed; the last stdout line is the verdict.
//
// Config (env VW_BROWSER_CONFIG, JSON): base, tokens {province, city}, city, other_city, site,
// other_site, cameras {ok, stop}, shots (dir or ""), features {problems, silent, events_table},
// deadline_s, profile_dir.
import { createInterface } from 'node:readline'
import { mkdirSync, mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const cfg = JSON.parse(process.env.VW_BROWSER_CONFIG)
const require = createRequire(join(cfg.web_dir, 'package.json'))
const { chromium } = require('playwright-core')

const DEADLINE = (cfg.deadline_s ?? 90) * 1000
const log = (...a) => console.error('[browser]', ...a)

// ---- the control channel ----
const rl = createInterface({ input: process.stdin })
const answers = []
const waiting = []
rl.on('line', (l) => {
  const w = waiting.shift()
  if (w) w(JSON.parse(l))
  else answers.push(JSON.parse(l))
})
async function ask(what, args = {}) {
  process.stdout.write('@@ ' + JSON.stringify({ ask: what, ...args }) + '\n')
  const a = answers.length ? answers.shift() : await new Promise((r) => waiting.push(r))
  if (!a.ok) throw new Error(`${what} failed: ${a.error}`)
  return a
}

// ---- helpers ----
async function until(what, fn, ms = DEADLINE) {
  const end = Date.now() + ms
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}${last ? ` (last: ${last.message})` : ''}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
const checks = []
function pass(name) {
  checks.push(name)
  log('PASS', name)
}

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const origin = new URL(cfg.base).origin
const foreign = [] // every request to another origin, from any page

async function openBrowser(name) {
  const dir = mkdtempSync(join(cfg.profile_dir, `${name}-`)) // a fresh --user-data-dir
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: cfg.chromium,
    headless: true,
    args: FLAGS.filter((f) => f !== '--headless'), // playwright passes its own --headless
    ignoreHTTPSErrors: true, // the test CA is not in this profile's trust store
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
  })
  ctx.on('request', (r) => {
    const u = r.url()
    if (u.startsWith('data:') || u.startsWith('blob:')) return
    if (new URL(u).origin !== origin) foreign.push(u)
  })
  const page = ctx.pages()[0] ?? (await ctx.newPage())
  page.on('pageerror', (e) => log(`${name} page error:`, e.message))
  page.on('console', (m) => m.text().startsWith('vw:') && log(`${name} console:`, m.text()))
  return { ctx, page }
}

async function login(page, token) {
  await page.goto(cfg.base + '/')
  await page.waitForURL(/\/login/, { timeout: DEADLINE })
  await field(page, 'token').fill(token)
  await page.locator('[data-test=login]').click()
  await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: DEADLINE })
}

async function shot(page, name) {
  if (!cfg.shots) return
  mkdirSync(cfg.shots, { recursive: true })
  // The venue page whole: its timeline and problems are below a 768 px fold.
  await page.screenshot({ path: join(cfg.shots, name), fullPage: name === 'venue.png' })
  log('screenshot', join(cfg.shots, name))
}

// Element Plus puts data-* of an el-input on its <input> (class/style on the wrapper).
const field = (page, name) => page.locator(`input[data-test=${name}], [data-test=${name}] input`).first()
const tile = (page, cam) => page.locator(`[data-camera="${cam}"]`)
const eventIds = async (page) => (await page.locator('[data-test=event-id]').allTextContents()).filter((s) => s).map(Number)

// ---- the run ----
const { ctx, page } = await openBrowser('province')
try {
  // Login: the province token, traded for the cookie; the overview lists both cities.
  await login(page, cfg.tokens.province)
  await page.locator(`[data-city="${cfg.city}"]`).waitFor({ timeout: DEADLINE })
  await page.locator(`[data-city="${cfg.other_city}"]`).waitFor({ timeout: DEADLINE })
  pass('province login shows every city')

  // Venue page: both cameras ok, then the one whose camd is stopped turns down, live.
  await page.goto(`${cfg.base}/site/${encodeURIComponent(cfg.site)}`)
  for (const cam of [cfg.cameras.ok, cfg.cameras.stop])
    await until(`${cam} ok on the venue page`, async () => (await tile(page, cam).getAttribute('data-status')) === 'ok')
  pass('venue page shows the cameras ok')
  const before = await page.evaluate(() => performance.getEntriesByType('navigation').length)
  await ask('stop_camera')
  const t0 = Date.now()
  // Down because it stopped: refused or cut off, not a timeout a busy machine may cause.
  await until(`${cfg.cameras.stop} down (unreachable) on the venue page`, async () => {
    const t = tile(page, cfg.cameras.stop)
    const faults = (await t.getAttribute('data-faults')) ?? ''
    return (await t.getAttribute('data-status')) === 'down' && /unreachable|protocol_error/.test(faults)
  })
  const downMs = Date.now() - t0
  const after = await page.evaluate(() => performance.getEntriesByType('navigation').length)
  if (after !== before) throw new Error('the page reloaded itself instead of updating live')
  log(`camera down visible ${downMs} ms after camd stopped`)
  const faults = await tile(page, cfg.cameras.stop).locator('[data-test=faults]').textContent()
  if (!faults || !faults.trim()) throw new Error('the down camera shows no fault')
  if (cfg.features.labels && /[a-z_]{4,}/.test(faults)) throw new Error(`fault shown as a code, not a name: ${faults}`)
  pass(`stopped camera turns down live (${downMs} ms), fault "${faults.trim()}"`)
  if (cfg.features.problems) {
    await until('a problem row for the stopped camera', async () => (await page.locator('[data-test=problems] tbody tr', { hasText: cfg.cameras.stop }).count()) > 0)
    pass('a problem appears on the venue page')
  }
  await page.locator('[data-test=timeline] canvas').first().waitFor({ timeout: DEADLINE })
  // Exam-session shading on the timeline: none before, one band once a session runs.
  const shades = async () => Number(await page.locator('[data-test=timeline]').getAttribute('data-shades'))
  if ((await shades()) !== 0) throw new Error(`the timeline shades ${await shades()} sessions before any was created`)
  await ask('start_session')
  await until('the running session shaded on the timeline', async () => {
    await page.reload()
    await page.locator('[data-test=timeline] canvas').first().waitFor({ timeout: DEADLINE })
    return (await shades()) === 1 && /电工/.test((await page.locator('[data-test=timeline]').getAttribute('data-shade-labels')) ?? '')
  })
  pass('a running exam session is shaded on the venue timeline')
  await shot(page, 'venue.png')

  // City view: the venue is down there too; search narrows the table.
  await page.goto(`${cfg.base}/city/${encodeURIComponent(cfg.city)}`)
  const row = page.locator('[data-test=venues] tbody tr', { hasText: cfg.site })
  await until('the venue down in the city table', async () => (await row.locator('[data-status=down]').count()) > 0)
  await field(page, 'search').fill('no-such-venue-xyz')
  await until('search hides the venue', async () => (await row.count()) === 0)
  await field(page, 'search').fill('')
  await row.waitFor({ timeout: DEADLINE })
  pass('city table shows the venue down; search filters it')
  await shot(page, 'city.png')
  if (cfg.features.problems) {
    // Ack through the dialog: a cookie-borne POST from the page's own origin.
    const prow = page.locator('[data-test=problems] tbody tr', { hasText: cfg.cameras.stop }).first()
    await prow.locator('[data-test=ack]').click()
    await page.locator('textarea[data-test=ack-message], [data-test=ack-message] textarea').first().fill('已电话通知考点')
    await page.locator('[data-test=ack-send]').click()
    await until('the problem shown as acknowledged', async () => (await prow.textContent()).includes('browser'))
    pass('a problem is acknowledged from the city view')
  }
  await page.goto(cfg.base + '/')
  await page.locator(`[data-city="${cfg.city}"] [data-test=n-down]`).waitFor({ timeout: DEADLINE })
  await until('the province overview counts the down venue', async () => Number(await page.locator(`[data-city="${cfg.city}"] [data-test=n-down]`).textContent()) >= 1)
  await shot(page, 'province.png')
  pass('province overview counts the down venue')
  // The English switch, and back to Chinese (the choice is kept in localStorage).
  await page.locator('[data-test=lang]').click()
  await page.locator('main h1', { hasText: 'Venues by city' }).waitFor({ timeout: DEADLINE })
  await page.locator('[data-test=lang]').click()
  await page.locator('main h1', { hasText: '全省各市考点状态' }).waitFor({ timeout: DEADLINE })
  pass('the English switch and back')

  // Phone width: the page itself never scrolls sideways (wide tables scroll inside).
  await page.setViewportSize({ width: 390, height: 844 })
  for (const path of ['/', `/city/${encodeURIComponent(cfg.city)}`, `/site/${encodeURIComponent(cfg.site)}`]) {
    await page.goto(cfg.base + path)
    await page.locator('main h1').first().waitFor({ timeout: DEADLINE })
    await page.waitForTimeout(500)
    const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth])
    if (sw > w + 1) throw new Error(`${path} is ${sw} px wide at a ${w} px phone width`)
  }
  await shot(page, 'phone.png')
  await page.setViewportSize({ width: 1366, height: 768 })
  await page.goto(cfg.base + '/')
  await page.locator(`[data-city="${cfg.city}"]`).waitFor({ timeout: DEADLINE })
  pass('phone width: no page scrolls sideways')

  // Keyboard: the skip link and the venue links are reachable with Tab.
  await page.keyboard.press('Tab')
  const focused = await page.evaluate(() => document.activeElement?.className || '')
  if (!String(focused).includes('skip')) throw new Error(`first Tab focuses ${focused}, not the skip link`)
  pass('keyboard: the first Tab reaches the skip link')

  // The live event log; SSE resumes after the server restarts, nothing lost or doubled.
  if (cfg.features.events_table && cfg.features.silent) {
    await page.goto(cfg.base + '/events')
    await page.locator('[data-test=conn-state][data-conn=open]').waitFor({ timeout: DEADLINE })
    // A page connected at a quiet moment (no event since it opened: the server's first frame
    // gave it only the highest stored id) loses nothing across a restart. The page's stream is
    // held off (aborted) while the restarted server stores an event, so that event is only
    // seen if the browser resumes from that id.
    const quiet = (await ask('max_event_id')).id
    if ((await eventIds(page)).some((id) => id > quiet)) throw new Error('the page saw an event: not a quiet moment')
    await ask('stop_server')
    await until('the lost-connection banner while the server is down', async () => (await page.locator('[data-test=conn-banner]').count()) > 0)
    pass('the lost-connection banner shows while the server is down')
    const hold = (route) => route.abort()
    await page.route('**/api/v1/events*', hold)
    await ask('start_server')
    await ask('prime_event') // stored while the page cannot connect
    await page.unroute('**/api/v1/events*', hold)
    await page.locator('[data-test=conn-state][data-conn=open]').waitFor({ timeout: DEADLINE })
    await until('the banner gone', async () => (await page.locator('[data-test=conn-banner]').count()) === 0)
    pass('the banner is gone once the server is back')
    const quietWant = (await ask('event_ids_after', { after: quiet })).ids
    if (!quietWant.length) throw new Error('no event stored after the quiet restart: nothing to compare')
    await until('every event after the quiet restart in the page log', async () => {
      const got = await eventIds(page)
      const miss = quietWant.filter((id) => !got.includes(id))
      if (miss.length) throw new Error(`missing ${miss.join(',')} of ${quietWant.length}`)
      return true
    })
    pass(`a page connected at a quiet moment resumed after a restart: ${quietWant.length} events, none lost`)
    const mark = (await ask('max_event_id')).id // the page's stream starts after this
    // The browser resumes from the last id it saw; a page that has seen none has nothing to
    // resume from (the server sends no id until an event: see the report). So the page sees
    // one event first, deterministically: the other city's agent goes silent.
    await ask('prime_event')
    await until('an event with an id on the page', async () => (await eventIds(page)).some((id) => id > mark))
    await ask('restart_server')
    await page.locator('[data-test=conn-state][data-conn=open]').waitFor({ timeout: DEADLINE })
    if (cfg.features.silent) {
      await ask('kill_agent')
      await until('site_silent in the event log', async () => (await page.locator('[data-test=event-log] tbody tr', { hasText: cfg.site }).filter({ hasText: cfg.silent_label }).count()) > 0)
      pass('agent killed → site_silent shows in the live log')
      await ask('start_agent')
    }
    const want = (await ask('event_ids_after', { after: mark })).ids
    if (!want.length) throw new Error('no events were stored after the restart: nothing to compare')
    await until('every stored event after the restart in the page log', async () => {
      const got = await eventIds(page)
      const miss = want.filter((id) => !got.includes(id))
      if (miss.length) throw new Error(`missing ${miss.join(',')} of ${want.length}; the page has ${got.length}`)
      return true
    })
    const conn = page.locator('[data-test=conn-state]')
    log(`feed: duplicates ignored ${await conn.getAttribute('data-dup')}, out of order ${await conn.getAttribute('data-ooo')}`)
    const got = (await eventIds(page)).filter((id) => id > mark)
    const dup = got.length - new Set(got).size
    const maxWant = Math.max(...want)
    const missing = want.filter((id) => !got.includes(id))
    const extra = got.filter((id) => id <= maxWant && !want.includes(id))
    if (dup || missing.length || extra.length) throw new Error(`event log after restart: dup=${dup} missing=${missing} extra=${extra}`)
    pass(`SSE resumed after a server restart: ${want.length} events, none lost or doubled`)
  }

  // A city login sees only its city: UI and API.
  const city = await openBrowser('city')
  try {
    await login(city.page, cfg.tokens.city)
    await city.page.waitForURL(new RegExp(`/city/${encodeURIComponent(cfg.city)}`), { timeout: DEADLINE })
    await city.page.locator('[data-test=venues] tbody tr', { hasText: cfg.site }).waitFor({ timeout: DEADLINE })
    if ((await city.page.locator('body', { hasText: cfg.other_site }).count()) > 0) throw new Error(`city page shows ${cfg.other_site}`)
    await city.page.goto(`${cfg.base}/site/${encodeURIComponent(cfg.other_site)}`)
    await city.page.locator('.el-alert--error').waitFor({ timeout: DEADLINE })
    if ((await city.page.locator('[data-camera]').count()) > 0) throw new Error('another city venue shows cameras')
    const r1 = await city.ctx.request.get(`${cfg.base}/api/v1/sites/${encodeURIComponent(cfg.other_site)}`)
    const r2 = await city.ctx.request.get(`${cfg.base}/api/v1/sites`)
    const list = (await r2.json()).sites.map((s) => s.site)
    if (r1.status() !== 404 || list.includes(cfg.other_site) || !list.includes(cfg.site))
      throw new Error(`city API: other site ${r1.status()}, list ${list}`)
    if (cfg.features.events_table) {
      await city.page.goto(cfg.base + '/events')
      await city.page.locator('[data-test=conn-state][data-conn=open]').waitFor({ timeout: DEADLINE })
      await ask('other_city_event') // something happens in the other city
      await new Promise((r) => setTimeout(r, 3000))
      if ((await city.page.locator('[data-test=event-log] tbody tr', { hasText: cfg.other_site }).count()) > 0) throw new Error('city event log shows another city')
    }
    pass('a city login never sees another city’s venue (UI and API)')
  } finally {
    await city.ctx.close()
  }

  if (foreign.length) throw new Error(`requests to other origins: ${[...new Set(foreign)].join(', ')}`)
  pass('every request went to the server’s own origin')
  process.stdout.write('@@ ' + JSON.stringify({ done: true, checks }) + '\n')
} catch (e) {
  log('FAIL', e.stack || e.message)
  if (cfg.fail_shot) await page.screenshot({ path: cfg.fail_shot }).catch(() => {})
  process.stdout.write('@@ ' + JSON.stringify({ done: false, error: String(e.message), checks }) + '\n')
  process.exitCode = 1
} finally {
  await ctx.close()
  rl.close()
}
