// The inspections pages in a real browser (issue 12 E): 双随机抽查 for a city supervisor,
// /public/ without a login, 我的检查任务 for two inspectors who record and confirm a result.
// Data comes from test_inspections.py through the real CLI and API. No control channel: the
// script only looks; the last stdout line is the verdict (`@@ {"done": ...}`).
//
// Config (env VW_BROWSER_CONFIG, JSON): base, web_dir, chromium, tokens {city, inspector_a,
// inspector_b}, draw, committed_draw, org, site, profile_dir, deadline_s, fail_shot.
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const cfg = JSON.parse(process.env.VW_BROWSER_CONFIG)
const require = createRequire(join(cfg.web_dir, 'package.json'))
const { chromium } = require('playwright-core')
const DEADLINE = (cfg.deadline_s ?? 90) * 1000
const log = (...a) => console.error('[browser]', ...a)
const checks = []
const pass = (name) => {
  checks.push(name)
  log('PASS', name)
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

const origin = new URL(cfg.base).origin
const foreign = []
const contexts = []
async function openBrowser(name) {
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(cfg.profile_dir, `${name}-`)), {
    executablePath: cfg.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ignoreHTTPSErrors: true,
    viewport: { width: 1366, height: 900 },
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
  })
  contexts.push(ctx)
  ctx.on('request', (r) => {
    const u = r.url()
    if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) foreign.push(u)
  })
  const page = ctx.pages()[0] ?? (await ctx.newPage())
  page.on('pageerror', (e) => log(`${name} page error:`, e.message))
  page.on('requestfailed', (r) => log(`${name} request failed:`, r.url(), r.failure()?.errorText))
  return page
}
const field = (page, name) => page.locator(`input[data-test=${name}], [data-test=${name}] input, textarea[data-test=${name}], [data-test=${name}] textarea`).first()
async function login(page, token) {
  await page.goto(cfg.base + '/')
  await page.waitForURL(/\/login/, { timeout: DEADLINE })
  await field(page, 'token').fill(token)
  await page.locator('[data-test=login]').click()
  await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: DEADLINE })
}

let current
try {
  // --- 双随机抽查: the city's draws with state and public link, inspections with due dates
  const city = (current = await openBrowser('city'))
  await login(city, cfg.tokens.city)
  await city.locator('[data-test=nav-inspections]').click()
  await city.waitForURL(/\/inspections$/, { timeout: DEADLINE })
  const drawRow = city.locator('[data-test=draws] tbody tr', { hasText: cfg.draw })
  await drawRow.waitFor({ timeout: DEADLINE })
  if (!/已公布/.test(await drawRow.locator('[data-test=draw-state]').textContent())) throw new Error('the published draw is not tagged 已公布')
  const href = await drawRow.locator('[data-test=draw-public]').getAttribute('href')
  if (href !== `/public/draws/${cfg.draw}`) throw new Error(`public link ${href}`)
  const committed = city.locator('[data-test=draws] tbody tr', { hasText: cfg.committed_draw })
  if (!/已承诺/.test(await committed.locator('[data-test=draw-state]').textContent())) throw new Error('the committed draw is not tagged 已承诺')
  pass('双随机抽查 lists the draws with their state and public page')
  const rows = city.locator('[data-test=inspections] tbody tr')
  await until('the draw’s inspections', async () => (await rows.count()) >= 2)
  const dues = (await city.locator('[data-test=inspections] [data-test=due]').allTextContents()).map((s) => s.trim())
  log('due cells', dues)
  // Every inspection of an executed draw has a deadline (its slot's date or the execute date).
  if (dues.length < 2 || !dues.every((d) => /^\d{4}-\d{2}-\d{2}$/.test(d))) throw new Error(`due cells ${JSON.stringify(dues)}`)
  pass('双随机抽查 lists the inspections with their due dates')

  // --- the public page, no login, same browser origin
  const anon = (current = await openBrowser('anon'))
  await anon.goto(cfg.base + href)
  await anon.locator('h1', { hasText: cfg.draw }).waitFor({ timeout: DEADLINE })
  const text = await anon.locator('body').textContent()
  for (const name of cfg.inspector_names) if (!text.includes(name)) throw new Error(`public page lacks ${name}`)
  if (await anon.locator('script').count()) throw new Error('the public page has a script')
  pass('the public page shows the drawn inspectors without a login')

  // --- 我的检查任务: inspector A records, inspector B confirms
  const a = (current = await openBrowser('inspector-a'))
  await login(a, cfg.tokens.inspector_a)
  await a.waitForURL(/\/tasks$/, { timeout: DEADLINE })
  const task = a.locator('[data-test=tasks] tbody tr', { hasText: cfg.org })
  await task.waitFor({ timeout: DEADLINE })
  await task.locator('[data-test=task-open]').click()
  await a.locator('[data-test=task-detail]').waitFor({ timeout: DEADLINE })
  const live = await a.locator('[data-test=site-live]').getAttribute('href')
  if (live !== `/site/${cfg.site}`) throw new Error(`site live link ${live}`)
  await a.locator('[data-test=outcome]').click()
  await a.locator('.el-select-dropdown__item', { hasText: '责令整改' }).click()
  await field(a, 'findings').fill('考场二后方摄像机缺失')
  await field(a, 'note').fill('内部备注')
  await a.locator('[data-test=record]').click()
  await until('the result recorded', async () => /已录入/.test(await a.locator('[data-test=task-detail]').textContent()))
  await until('A’s own confirm button', async () => (await a.locator('[data-test=confirm]').count()) === 1)
  await a.locator('[data-test=confirm]').click()
  await until('A’s confirmation counted', async () => /已有 1 人确认/.test(await a.locator('[data-test=confirmations]').textContent()))
  pass('an inspector records a result with an outcome and confirms it')

  const b = (current = await openBrowser('inspector-b'))
  await login(b, cfg.tokens.inspector_b)
  await b.waitForURL(/\/tasks$/, { timeout: DEADLINE })
  await b.locator('[data-test=tasks] tbody tr', { hasText: cfg.org }).locator('[data-test=task-open]').click()
  await b.locator('[data-test=confirm]').waitFor({ timeout: DEADLINE })
  await b.locator('[data-test=confirm]').click()
  await until('confirmed by two', async () => /已确认/.test(await b.locator('[data-test=task-detail]').textContent()))
  pass('a second inspector confirms: the result is confirmed')
  // an inspector is kept to his tasks
  await b.goto(cfg.base + '/inspections')
  await b.waitForURL(/\/tasks$/, { timeout: DEADLINE })
  pass('an inspector asking for 双随机抽查 lands on his tasks')

  if (foreign.length) throw new Error(`requests to other origins: ${[...new Set(foreign)].join(', ')}`)
  pass('every request went to the server’s own origin')
  process.stdout.write('@@ ' + JSON.stringify({ done: true, checks }) + '\n')
} catch (e) {
  log('FAIL', e.stack || e.message)
  if (cfg.fail_shot && current) await current.screenshot({ path: cfg.fail_shot, fullPage: true }).catch(() => {})
  process.stdout.write('@@ ' + JSON.stringify({ done: false, error: String(e.message), checks }) + '\n')
  process.exitCode = 1
} finally {
  for (const c of contexts) await c.close().catch(() => {})
}
