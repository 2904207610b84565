import { createApp } from 'vue'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { installUi } from './ui'
import { loadLabels } from './composables/useLabels'
import './style.css'

const app = createApp(App)
app.use(i18n)
app.use(router)
installUi(app)
void loadLabels()
app.mount('#app')
