// A tiny Vite plugin: after the bundle is written, NAME.gz beside every text file worth
// compressing (static.c serves NAME.gz with Content-Encoding: gzip when the client accepts it).
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync, constants } from 'node:zlib'
import type { Plugin } from 'vite'

const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/
const MIN_BYTES = 1024 // below one packet gzip saves nothing worth a second file

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else out.push(p)
  }
  return out
}

export function gzipTree(dir: string): number {
  let n = 0
  for (const file of walk(dir, [])) {
    if (!COMPRESSIBLE.test(file)) continue
    const data = readFileSync(file)
    if (data.length < MIN_BYTES) continue
    const gz = gzipSync(data, { level: constants.Z_BEST_COMPRESSION })
    if (gz.length >= data.length) continue
    writeFileSync(file + '.gz', gz)
    n++
  }
  return n
}

export function precompress(): Plugin {
  let outDir = 'dist'
  return {
    name: 'vw-precompress',
    apply: 'build',
    configResolved(c) {
      outDir = c.build.outDir
    },
    closeBundle() {
      gzipTree(outDir)
    },
  }
}
