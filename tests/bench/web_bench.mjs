// web_bench.sh's browser half: log in once, then time REPS loads of the province overview and
// of one city's venue table, from page.goto until the data is on the page.
import { createRequire } from 'node:module'
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'

const cfg = JSON.parse(process.env.VW_BENCH)
const { chromium } = createRequire(join(cfg.web_dir, 'package.json'))('playwright-core')
const ctx = await chromium.launchPersistentContext(mkdtempSync(join(cfg.profile, 'chromium-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  ignoreHTTPSErrors: true,
  viewport: { width: 1366, height: 768 },
})
const page = ctx.pages()[0] ?? (await ctx.newPage())
await page.goto(cfg.base + '/login')
await page.locator('input[data-test=token]').fill(cfg.token)
await page.locator('[data-test=login]').click()
await page.waitForURL((u) => !u.pathname.startsWith('/login'))

const sites = await (await ctx.request.get(cfg.base + '/api/v1/sites')).json()
const cities = new Set(sites.sites.map((s) => s.city)).size
const inCity = sites.sites.filter((s) => s.city === cfg.city).length

async function time(path, ready) {
  const t0 = performance.now()
  await page.goto(cfg.base + path)
  await page.waitForFunction(ready, undefined, { timeout: 60000, polling: 'raf' })
  return performance.now() - t0
}
const pages = {
  province: ['/', `document.querySelectorAll('[data-city]').length === ${cities}`],
  city: [`/city/${cfg.city}`, `document.querySelectorAll('[data-test=venues] tbody tr').length === ${inCity}`],
}
console.log(`sites=${sites.sites.length} cities=${cities} venues_in_${cfg.city}=${inCity}`)
for (const [name, [path, ready]] of Object.entries(pages)) {
  await time(path, ready) // warm-up: the browser's cache holds the hashed assets after it
  const ms = []
  for (let i = 0; i < cfg.reps; i++) ms.push(await time(path, ready))
  ms.sort((a, b) => a - b)
  console.log(`${name}: median_ms=${ms[ms.length >> 1].toFixed(0)} max_ms=${ms[ms.length - 1].toFixed(0)} (${cfg.reps} loads: ${ms.map((x) => x.toFixed(0)).join(' ')})`)
}
await ctx.close()
