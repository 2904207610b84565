import { describe, expect, it } from 'vitest'
import fixture from './fixtures/labels.json'
import { emptyLabels, faultList, label } from '../src/lib/labels'
import type { Labels } from '../src/api/types'

const L = fixture as Labels

describe('labels', () => {
  it('maps fault codes to Chinese and English names', () => {
    expect(label(L, 'faults', 'black', 'zh')).toBe('黑屏')
    expect(label(L, 'faults', 'frozen', 'en')).toBe('Frozen picture')
  })
  it('shows an unknown code as itself rather than hiding it', () => {
    expect(label(L, 'faults', 'lens_cap', 'zh')).toBe('lens_cap')
    expect(label(emptyLabels, 'kinds', 'stream', 'en')).toBe('stream')
  })
  it('joins fault lists with the language’s separator', () => {
    expect(faultList(L, ['black', 'frozen'], 'zh')).toBe('黑屏、画面冻结')
    expect(faultList(L, ['black', 'frozen'], 'en')).toBe('Black picture, Frozen picture')
    expect(faultList(L, [], 'zh')).toBe('')
  })
})
