import { ref } from 'vue'
import { api } from '../api/client'
import type { Me } from '../api/types'

const me = ref<Me | null>(null)
let checked = false

/** Who the cookie says we are (null: not logged in). Asked once, then kept until login/logout. */
export async function whoAmI(force = false): Promise<Me | null> {
  if (checked && !force) return me.value
  try {
    me.value = await api.me()
  } catch {
    me.value = null
  }
  checked = true
  return me.value
}

export function setMe(m: Me | null): void {
  me.value = m
  checked = true
}

export function useMe() {
  return me
}
