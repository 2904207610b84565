import { createI18n } from 'vue-i18n'
import zhCN from './locales/zh-CN'
import en from './locales/en'

export type Locale = 'zh-CN' | 'en'
const saved = (typeof localStorage !== 'undefined' && localStorage.getItem('vw_lang')) as Locale | null

export const i18n = createI18n({
  legacy: false,
  locale: saved === 'en' ? 'en' : 'zh-CN',
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zhCN, en },
})

export function setLocale(l: Locale): void {
  i18n.global.locale.value = l
  localStorage.setItem('vw_lang', l)
  document.documentElement.lang = l
}
