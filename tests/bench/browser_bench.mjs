// How soon the dashboard's province and city views are usable in a real browser (issue 16
// "Performance"): Debian's Chromium driven by playwright-core (from the web/ node_modules)
// against a running server that serves the built dashboard. Used by browser_bench.sh.
//
// Env VW_BENCH (JSON): base, web_dir (has node_modules/playwright-core), chromium, token,
// province_cities (cards the province view must show), city, city_venues (rows the city
// table must show), reps, profile_dir.
//
// Each rep is a fresh navigation (page.goto of the view's URL, cached assets allowed as on an
// office PC that opened it before), timed in the page: performance.now() — milliseconds since
// the navigation started — at the first animation frame where the view shows all its data
// (province: every city's card with its venue count; city: the venues table's first page, or
// every row where the table is not paged).
// Prints one key=value line per view: reps, p50_ms, max_ms, and every rep.
import { createRequire } from 'node:module'
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'

const cfg = JSON.parse(process.env.VW_BENCH)
const require = createRequire(join(cfg.web_dir, 'package.json'))
const { chromium } = require('playwright-core')

const ctx = await chromium.launchPersistentContext(mkdtempSync(join(cfg.profile_dir, 'bench-')), {
  executablePath: cfg.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  ignoreHTTPSErrors: true,
  viewport: { width: 1366, height: 768 },
  locale: 'zh-CN',
  timezoneId: 'Asia/Shanghai',
})
const page = ctx.pages()[0] ?? (await ctx.newPage())
page.on('pageerror', (e) => console.error('page error:', e.message))

// Login as a supervisor does: the token on the login page, traded for the session cookie.
await page.goto(cfg.base + '/')
await page.waitForURL(/\/login/, { timeout: 60000 })
await page.locator('input[data-test=token], [data-test=token] input').first().fill(cfg.token)
await page.locator('[data-test=login]').click()
await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: 60000 })

// Resolves with performance.now() at the first frame where ready() holds.
async function timeView(url, ready, arg) {
  await page.goto(url, { waitUntil: 'commit' })
  return page.evaluate(
    ([src, a]) =>
      new Promise((resolve, reject) => {
        const fn = new Function('a', src)
        const end = performance.now() + 60000
        const tick = () => {
          if (fn(a)) resolve(performance.now())
          else if (performance.now() > end) reject(new Error('view not ready in 60 s'))
          else requestAnimationFrame(tick)
        }
        tick()
      }),
    [ready, arg],
  )
}

const provinceReady = `
  const cards = document.querySelectorAll('[data-test=cities] [data-city]')
  return cards.length >= a && [...cards].every((c) => /\\d/.test(c.querySelector('dd')?.textContent ?? ''))`
// A paged city table (data-test=venues-pager) is ready with its first page of rows (50) and
// the count of all venues shown; an unpaged one (the dashboard before paging) with every row.
const cityReady = `
  const pager = document.querySelector('[data-test=venues-pager]')
  const rows = document.querySelectorAll('[data-test=venues] .el-table__body tbody tr').length
  if (!pager) return rows >= a
  return rows >= Math.min(a, 50) && (document.querySelector('[data-test=venue-count]')?.textContent ?? '').includes(String(a))`

function report(name, times) {
  const s = [...times].sort((x, y) => x - y)
  console.log(`view=${name} reps=${s.length} p50_ms=${s[Math.floor((s.length - 1) / 2)].toFixed(0)} max_ms=${s[s.length - 1].toFixed(0)} all_ms=${times.map((t) => t.toFixed(0)).join(',')}`)
}

for (const [name, url, ready, arg] of [
  ['province', cfg.base + '/', provinceReady, cfg.province_cities],
  ['city', `${cfg.base}/city/${encodeURIComponent(cfg.city)}`, cityReady, cfg.city_venues],
]) {
  if (!arg) continue
  const times = []
  for (let i = 0; i < cfg.reps; i++) times.push(await timeView(url, ready, arg))
  report(name, times)
}
// Server to browser, in an exam session: a batch saying a camera went black (or came back)
// is posted as the venue's agent would (its client certificate, a fresh epoch), and timed
// from the POST until the venue page open in the browser shows that camera with that status
// (the live stream, no reload). The agent's own detection (its in-session cadence and the
// check) comes before this and is not part of it.
if (cfg.probe) {
  const https = await import('node:https')
  const { readFileSync } = await import('node:fs')
  const agent = new https.Agent({
    cert: readFileSync(cfg.probe.cert),
    key: readFileSync(cfg.probe.key),
    ca: readFileSync(cfg.probe.ca),
    keepAlive: true,
  })
  const epoch = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('')
  let seq = 0
  const post = (status) =>
    new Promise((resolve, reject) => {
      seq++
      const body = JSON.stringify({
        site: cfg.probe.site,
        agent: cfg.probe.site,
        epoch,
        results: [{ seq, ts: new Date().toISOString(), mono_ms: seq, kind: 'stream', target: cfg.probe.camera, status, codec: 'h264', faults: status === 'ok' ? [] : ['black'], metrics: { fps: 25, width: 1920, height: 1080 } }],
      })
      const req = https.request(`${cfg.base}/api/v1/ingest`, { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, servername: 'localhost' }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`ingest ${res.statusCode}`))))
      })
      req.on('error', reject)
      req.end(body)
    })
  await page.goto(`${cfg.base}/site/${encodeURIComponent(cfg.probe.site)}`)
  const tileSel = `[data-camera="${cfg.probe.camera}"]`
  await page.waitForSelector(tileSel, { timeout: 60000 })
  const times = []
  for (let i = 0; i < cfg.reps * 2; i++) {
    const want = i % 2 === 0 ? 'down' : 'ok'
    const t0 = performance.now()
    await post(want)
    await page.waitForSelector(`${tileSel}[data-status="${want}"]`, { timeout: 60000 })
    if (want === 'down') times.push(performance.now() - t0)
  }
  report('batch_to_browser_black_camera', times)
}
await ctx.close()
