import { createRouter, createWebHistory } from 'vue-router'
import { whoAmI } from './composables/useMe'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { public: true } },
    { path: '/', name: 'province', component: () => import('./pages/ProvincePage.vue') },
    { path: '/city/:city', name: 'city', component: () => import('./pages/CityPage.vue'), props: true },
    { path: '/site/:site', name: 'venue', component: () => import('./pages/VenuePage.vue'), props: true },
    { path: '/events', name: 'events', component: () => import('./pages/EventsPage.vue') },
    // issue 12: 双随机抽查 (province/city) and 我的检查任务 (inspectors).
    { path: '/inspections', name: 'inspections', component: () => import('./pages/InspectionsPage.vue') },
    { path: '/tasks', name: 'tasks', component: () => import('./pages/MyTasksPage.vue') },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  const me = await whoAmI()
  if (!me) return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  // A city supervisor's home is its city (属地管理); the province overview would show one row.
  if (to.name === 'province' && me.role === 'city' && me.city) return { name: 'city', params: { city: me.city } }
  // An inspector sees his tasks and, during a visit, the site's live view; nothing else.
  if (me.role === 'inspector' && to.name !== 'tasks' && to.name !== 'venue') return { name: 'tasks' }
  return true
})
