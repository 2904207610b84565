import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'
import { precompress } from './scripts/precompress.ts'

// The server serves the build from [web] root: hashed files under /assets/ (cached for a
// year, immutable) and NAME.gz beside each (static.c sends it to gzip-accepting clients).
// Nothing is loaded from another origin: the dashboard must work on an intranet.
export default defineConfig({
  plugins: [vue(), precompress()],
  base: '/',
  build: {
    outDir: process.env.VW_WEB_OUT || 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks(id: string) {
          if (id.includes('node_modules/echarts') || id.includes('node_modules/zrender')) return 'charts'
          if (id.includes('node_modules/element-plus') || id.includes('node_modules/@element-plus')) return 'ui'
          if (id.includes('node_modules/')) return 'vendor'
          return undefined
        },
      },
    },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
})
