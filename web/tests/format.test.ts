import { describe, expect, it } from 'vitest'
import { duration, localDate, localTime } from '../src/lib/format'

describe('format', () => {
  it('shows times in Asia/Shanghai', () => {
    expect(localTime('2026-12-01T16:30:05.000Z')).toBe('2026-12-02 00:30:05')
    expect(localDate(Date.parse('2026-12-01T16:30:05.000Z'))).toBe('2026-12-02')
    expect(localTime(null)).toBe('—')
  })
  it('writes durations in Chinese and English', () => {
    expect(duration(95, 'zh')).toBe('1分35秒')
    expect(duration(3 * 3600 + 120, 'en')).toBe('3 h 2 min')
    expect(duration(2 * 86400 + 3600, 'zh')).toBe('2天1小时')
    expect(duration(42, 'en')).toBe('42 s')
  })
})
