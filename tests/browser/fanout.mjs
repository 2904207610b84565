// Live events across collectors (tests/browser/test_fanout.py): Chromium on collector B's
// venue page while the agent uploads to collector A only. Process control stays in Python
// (`@@ {"ask": ...}` on stdout, the answer as one JSON line on stdin), as in dashboard.mjs.
//
// Config (env VW_BROWSER_CONFIG, JSON): base (collector B), web_dir, chromium, token, site,
// cameras {ok, stop}, deadline_s, profile_dir, fail_shot.
import { createInterface } from 'node:readline'
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const cfg = JSON.parse(process.env.VW_BROWSER_CONFIG)
const require = createRequire(join(cfg.web_dir, 'package.json'))
const { chromium } = require('playwright-core')

const DEADLINE = (cfg.deadline_s ?? 90) * 1000
const log = (...a) => console.error('[browser]', ...a)

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

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ctx = await chromium.launchPersistentContext(mkdtempSync(join(cfg.profile_dir, 'fanout-')), {
  executablePath: cfg.chromium,
  headless: true,
  args: FLAGS,
  ignoreHTTPSErrors: true, // the test CA is not in this profile's trust store
  viewport: { width: 1366, height: 768 },
  locale: 'zh-CN',
  timezoneId: 'Asia/Shanghai',
})
const page = ctx.pages()[0] ?? (await ctx.newPage())
page.on('pageerror', (e) => log('page error:', e.message))
const field = (name) => page.locator(`input[data-test=${name}], [data-test=${name}] input`).first()
const tile = (cam) => page.locator(`[data-camera="${cam}"]`)
try {
  await page.goto(cfg.base + '/')
  await page.waitForURL(/\/login/, { timeout: DEADLINE })
  await field('token').fill(cfg.token)
  await page.locator('[data-test=login]').click()
  await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: DEADLINE })
  await page.goto(`${cfg.base}/site/${encodeURIComponent(cfg.site)}`)
  for (const cam of [cfg.cameras.ok, cfg.cameras.stop])
    await until(`${cam} ok on collector B's venue page`, async () => (await tile(cam).getAttribute('data-status')) === 'ok')
  pass("collector B's venue page shows the cameras collector A ingested")
  const navs = await page.evaluate(() => performance.getEntriesByType('navigation').length)
  await ask('stop_camera')
  const t0 = Date.now()
  await until(`${cfg.cameras.stop} down on collector B's page`, async () => (await tile(cfg.cameras.stop).getAttribute('data-status')) === 'down')
  const downMs = Date.now() - t0
  if ((await page.evaluate(() => performance.getEntriesByType('navigation').length)) !== navs)
    throw new Error('the page reloaded itself instead of updating live')
  pass(`the stopped camera turns down live on B (${downMs} ms after camd stopped)`)
  await until('a problem row for the stopped camera on B', async () => (await page.locator('[data-test=problems] tbody tr', { hasText: cfg.cameras.stop }).count()) > 0)
  pass(`its problem appears on B's page (${Date.now() - t0} ms after camd stopped)`)
  if ((await tile(cfg.cameras.ok).getAttribute('data-status')) !== 'ok') throw new Error('the other camera is not ok')
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
