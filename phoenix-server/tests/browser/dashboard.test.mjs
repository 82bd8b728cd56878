// Browser test of the Phoenix dashboard: a real `phoenix-server dev` (in-memory store, an
// in-process agent measuring this machine's processes, a demo experiment) on free ports,
// driven through headless Chromium. Nothing is mocked: every number on screen comes from
// the agent's measurements.
//
// Usage: node dashboard.test.mjs <phoenix-server binary> <artefact directory>
// Environment: CHROMIUM (default /usr/bin/chromium), DEMO_SECS (default 45: enough judged samples after the warm-up for a verdict).

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [binary, artefacts] = process.argv.slice(2);
if (!binary || !artefacts) {
  console.error('usage: node dashboard.test.mjs <phoenix-server binary> <artefact directory>');
  process.exit(2);
}
mkdirSync(artefacts, { recursive: true });
const demoSecs = Number(process.env.DEMO_SECS || 45);
const started = Date.now();

function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// ---- the server --------------------------------------------------------------------------
let serverOut = '';
const server = spawn(binary, [
  'dev', '--port', '0', '--agent-listen', '127.0.0.1:0', '--demo-secs', String(demoSecs), '--log', 'warn',
], { stdio: ['ignore', 'pipe', 'pipe'] });
server.stdout.on('data', (d) => { serverOut += d; });
server.stderr.on('data', (d) => { serverOut += d; });
const serverExit = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
// Whatever happens below (a launch failure, an uncaught error), the server goes with us.
let serverGone = false;
server.on('exit', () => { serverGone = true; });
process.on('exit', () => {
  if (!serverGone) server.kill('SIGKILL');
});

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Failure(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const printed = await waitFor('the dev server to print its dashboard URL, token and demo experiment', () => {
  const dash = serverOut.match(/Dashboard:\s+(http:\/\/\S+\/ui\/)#token=(\S+)/);
  const demo = serverOut.match(/Demo experiment:\s+([0-9a-f-]{36})/);
  const agent = serverOut.match(/baseline at (http:\/\/\S+\/metrics\/baseline)/);
  return dash && demo && agent ? { ui: dash[1], token: dash[2], experiment: demo[1], baselineUrl: agent[1] } : null;
}, 60000);
const base = new URL('..', printed.ui).href.replace(/\/$/, '');
log(`server at ${base}, demo experiment ${printed.experiment}`);

async function api(method, path, body, token = printed.token) {
  const resp = await fetch(`${base}/api/v1/${path}`, {
    method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await resp.json();
  if (!resp.ok) throw new Failure(`${method} ${path}: ${resp.status} ${JSON.stringify(data)}`);
  return data;
}

// ---- the browser -------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root in a container has no user namespace sandbox.
  args: ['--no-sandbox'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
const page = await context.newPage();
const problems = [];
page.on('console', (m) => {
  // The refused sign-in and the bad pricing model below are expected to log their 401/422.
  if (m.type() === 'error' && !/status of (401|422)/.test(m.text())) problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('requestfailed', (r) => {
  // A view aborts its requests in flight when the user leaves it (ERR_ABORTED).
  const why = r.failure()?.errorText || '';
  if (!r.url().includes('/api/v1/ws') && !why.includes('ERR_ABORTED')) problems.push(`request failed: ${r.url()} ${why}`);
});
await page.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
  });
});

// Every request stays on the server's origin, and none is refused as forbidden: the page
// only asks what its token may (a viewer included).
const origin = new URL(printed.ui).origin;
page.on('request', (r) => {
  const url = new URL(r.url());
  if (!['data:', 'about:'].includes(url.protocol) && url.origin !== origin && url.origin !== origin.replace('http', 'ws')) {
    problems.push(`request to another origin: ${r.url()}`);
  }
});
page.on('response', (r) => {
  if (r.status() === 403) problems.push(`forbidden: ${r.request().method()} ${r.url()}`);
});

let step = 'start';
// Each step at both widths the page must hold (a laptop and a phone), with no horizontal
// overflow at either.
const WIDTHS = [{ width: 1280, height: 900 }, { width: 390, height: 844 }];
async function shot(name) {
  for (const size of WIDTHS) {
    await page.setViewportSize(size);
    const file = join(artefacts, `${name}-${size.width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    check(scroll <= inner, `${name} at ${size.width} px overflows horizontally: scrollWidth ${scroll} > ${inner}`);
    log(`screenshot ${file}`);
  }
  await page.setViewportSize({ width: 1440, height: 900 });
}

const phaseOf = (locator) => locator.locator('[data-phase]').first().getAttribute('data-phase');

try {
  // 1. Sign-in: a wrong token shows the server's message; the dev link's fragment is
  //    consumed and removed from the address bar.
  step = 'sign-in';
  await page.goto(printed.ui);
  await page.locator('#token-input').fill('phx_user_not-a-real-token-0000000000');
  await page.locator('#login button[type=submit]').click();
  const refusal = await page.locator('#login .error').textContent({ timeout: 10000 });
  check(/token|credential/i.test(refusal), `sign-in error should carry the server's message, got: ${refusal}`);
  log(`wrong token refused: ${refusal.trim()}`);

  await page.goto(`${printed.ui}#token=${printed.token}`);
  await page.waitForSelector('#experiments, .view .empty', { timeout: 15000 });
  check(!page.url().includes(printed.token), `the token must leave the address bar, url is ${page.url()}`);
  check(await page.evaluate(() => sessionStorage.getItem('phoenix.token')) === printed.token, 'token kept in sessionStorage');
  await page.waitForSelector('#live.on', { timeout: 15000 });
  log('signed in through the dev link; WebSocket live');

  // 2. The demo experiment appears and changes phase without a reload.
  step = 'live phase change';
  const row = page.locator(`#experiments tr[data-key="${printed.experiment}"]`);
  await row.waitFor({ timeout: 30000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const firstPhase = await phaseOf(row);
  log(`experiment listed in phase ${firstPhase}`);
  const demoNow = await api('GET', `experiments/${printed.experiment}`);
  check(!demoNow.terminal && !demoNow.resting, `demo already finished (${demoNow.phase}) before the page loaded`);
  // The phase filter lists the server's phases, in its order (the page keeps no list).
  const catalogue = (await api('GET', 'experiments/phases')).map((p) => p.phase);
  const options = await page.locator('#phase-filter option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  check(JSON.stringify(options) === JSON.stringify(catalogue), `phase filter ${options} should be the server's ${catalogue}`);
  await waitFor(`the phase to change from ${firstPhase} in the list`, async () => (await phaseOf(row)) !== firstPhase, (demoSecs + 60) * 1000);
  const secondPhase = await phaseOf(row);
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  log(`phase changed live: ${firstPhase} -> ${secondPhase}`);
  // An experiment created elsewhere shows up without a reload too.
  const created = await api('POST', 'experiments', {
    name: 'browser test: created through the API',
    spec: { baseline: { template: 'baseline' }, candidate: { template: 'topk', params: { k: 3 } }, duration_secs: 600 },
  });
  await page.locator(`#experiments tr[data-key="${created.id}"]`).waitFor({ timeout: 15000 });
  check(await phaseOf(page.locator(`#experiments tr[data-key="${created.id}"]`)) === 'created', 'new experiment listed as created');
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  log('an experiment created through the API appeared live');
  await shot('experiments');

  // 3. Detail: real KPI numbers and charts; wait for the verdict.
  step = 'experiment detail';
  await row.locator('a').first().click();
  await page.waitForSelector('#experiment-name', { timeout: 15000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const reduction = page.locator('[data-kpi="cardinality_reduction_pct"] .value');
  const reductionText = await waitFor('a measured cardinality reduction', async () => {
    const t = await reduction.textContent().catch(() => '');
    return /\d/.test(t) && /%/.test(t) ? t : null;
  }, (demoSecs + 30) * 1000);
  log(`cardinality reduction shown: ${reductionText.trim()}`);
  const points = await page.locator('#chart-series circle').count();
  check(points >= 2, `the series chart should have points, has ${points}`);
  const axis = await page.locator('#chart-series').textContent();
  check(axis.includes('series (sum over hosts)') && axis.includes('time (UTC)'), 'chart axes are labelled');
  const series = await page.locator('#variants tbody tr').first().locator('td').nth(1).textContent();
  check(Number(series.replace(/,/g, '')) > 0, `baseline series should be measured, got ${series}`);
  await waitFor('the verdict', async () => page.locator('#verdict-outcome').count(), (demoSecs + 60) * 1000);
  const verdict = await page.locator('#verdict-outcome').textContent();
  const criteria = await page.locator('#criteria tbody tr').count();
  check(criteria > 0, 'verdict criteria listed');
  log(`verdict ${verdict} with ${criteria} criteria`);
  await waitFor('the cost per variant', async () => page.locator('#cost-measured').count(), 30000);
  const costText = await page.locator('#cost-measured').textContent();
  check(/USD|EUR/.test(costText), `costs carry a currency: ${costText.slice(0, 200)}`);
  check(await phaseOf(page.locator('#experiment-phase')) === 'completed', 'detail shows completed');
  await shot('experiment-completed');
  // The top of the page down to the charts (docs/dashboard.png is a copy of one of these).
  const kpiBox = await page.locator('#kpi-panel').boundingBox();
  await page.screenshot({
    path: join(artefacts, 'experiment-overview.png'),
    fullPage: true,
    clip: { x: 0, y: 0, width: 1440, height: Math.ceil(kpiBox.y + kpiBox.height + 16) },
  });

  // 4. Roll back (graceful, with a reason) and watch it finish live.
  step = 'rollback';
  const form = page.locator('form[data-action="rollback"]');
  await form.locator('select[name=mode]').selectOption('graceful');
  await form.locator('input[name=reason]').fill('browser test: roll back the demo');
  await form.locator('button[type=submit]').click();
  await waitFor('rolled_back', async () => (await phaseOf(page.locator('#experiment-phase'))) === 'rolled_back', 60000);
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  const record = await page.locator('#rollback-record').textContent();
  check(record.includes('browser test: roll back the demo') && record.includes('graceful'), `rollback provenance shown: ${record}`);
  await page.waitForSelector('#events td:has-text("rollback")', { timeout: 10000 });
  log('rolled back gracefully; provenance in the events');
  await shot('experiment-rolled-back');

  // The forms offered are the actions the server allows: after a rollback, only delete.
  const offered = async () => page.locator('form[data-action]').evaluateAll((fs) => fs.map((f) => f.dataset.action));
  const allowedNow = async (id) => (await api('GET', `experiments/${id}`)).allowed_actions;
  await waitFor('the actions of rolled_back', async () => JSON.stringify(await offered()) === JSON.stringify(await allowedNow(printed.experiment)), 15000);
  log(`rolled back: offered ${await offered()}`);

  // 5. Stop an experiment that never started (from created), then delete it.
  step = 'stop from created, delete';
  await page.goto(`${printed.ui}#/experiments/${created.id}`);
  await page.waitForSelector(`[data-experiment="${created.id}"] #experiment-name`, { timeout: 15000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const createdOffer = await offered();
  check(JSON.stringify(createdOffer) === JSON.stringify(['start', 'stop', 'delete']), `created offers start, stop and delete, got ${createdOffer}`);
  check(JSON.stringify(createdOffer) === JSON.stringify(await allowedNow(created.id)), 'the forms are the allowed actions');
  const stopForm = page.locator('form[data-action="stop"]');
  await stopForm.locator('input[name=reason]').fill('browser test: never needed');
  await stopForm.locator('button[type=submit]').click();
  await waitFor('stopped', async () => (await phaseOf(page.locator('#experiment-phase'))) === 'stopped', 15000);
  await waitFor('only delete offered', async () => JSON.stringify(await offered()) === JSON.stringify(['delete']), 15000);
  check((await api('GET', `experiments/${created.id}`)).terminal, 'stopped is terminal on the wire');
  await page.waitForSelector('#events td:has-text("never needed")', { timeout: 10000 });
  await shot('experiment-stopped-from-created');
  await page.locator('form[data-action="delete"] button[type=submit]').click();
  await page.waitForSelector('#experiments', { timeout: 15000 });
  await waitFor('the deleted experiment to leave the list', async () => (await page.locator(`#experiments tr[data-key="${created.id}"]`).count()) === 0, 15000);
  const gone = await fetch(`${base}/api/v1/experiments/${created.id}`, { headers: { Authorization: `Bearer ${printed.token}` } });
  check(gone.status === 404, `deleted experiment answers 404, got ${gone.status}`);
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  log('stopped from created, then deleted');

  // 5b. A new experiment from the form: fields from the API, the matching agents as the
  //     targets are typed, a preview on the agent's recorded sample, one server field error
  //     shown at its field and corrected, create, start, a verdict, promote.
  step = 'new experiment form';
  await page.goto(`${printed.ui}#/experiments`);
  await page.locator('#new-experiment-link').click();
  await page.waitForSelector('#experiment-form #candidate-template', { timeout: 15000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  const pricing = await page.locator('#spec-pricing_model option').evaluateAll((os) => os.map((o) => o.value));
  check(JSON.stringify(pricing) === JSON.stringify(doc.components.schemas.ExperimentSpec.properties.pricing_model.enum), `pricing models from the API, got ${pricing}`);
  const defaultCriteria = doc.components.schemas.ExperimentSpec.properties.criteria.default;
  check(await page.locator('#criteria-form tbody tr.criterion').count() === defaultCriteria.length, 'the default criteria are the API\'s');
  const templates = (await api('GET', 'pipelines/templates')).items;
  const topk = templates.find((t) => t.name === 'topk');
  check(await page.locator('#candidate-param-k').getAttribute('max') === String(topk.params.find((p) => p.name === 'k').max), 'parameter bounds from the template schema');
  await page.locator('#exp-name').fill('browser test: from the form');
  await page.locator('#candidate-template').selectOption('topk');
  await page.locator('#candidate-param-k').fill('3');
  // Targets: the agents the selector picks, asked of the server as they are typed.
  const [agent] = (await api('GET', 'agents')).items;
  await page.locator('#targets-hosts').pressSequentially('no-such-host');
  await waitFor('no agent matching', async () => /No live agent/.test(await page.locator('#targets-matching .match-count').textContent().catch(() => '')), 10000);
  await page.locator('#targets-hosts').fill(agent.host);
  await page.locator(`#targets-matching li[data-agent="${agent.id}"]`).waitFor({ timeout: 10000 });
  await page.locator('#spec-duration_secs').fill(String(demoSecs));
  await page.locator('#spec-sample_interval_secs').fill('5');
  // A warm-up as long as the run: the server refuses it (a rule only the server knows).
  await page.locator('#spec-warmup_secs').fill(String(demoSecs));
  // Keep the critical cardinality criterion only (remove the rest, by keyboard).
  while (await page.locator('#criteria-form tbody tr.criterion').count() > 1) {
    await page.locator('#criteria-form tbody tr.criterion').nth(1).locator('button.remove').focus();
    await page.keyboard.press('Enter');
  }
  check(await page.locator('#criteria-form tbody tr.criterion [name=kpi]').inputValue() === 'cardinality_reduction_pct', 'the cardinality criterion kept');
  // The preview runs on a target agent's recorded snapshot (offered as the targets
  // match), priced under the form's pricing model; the sample field is for pasting only.
  check(await page.locator('#preview-agent').inputValue() === agent.id, 'the matching agent offered for the preview');
  check(await page.locator('#preview-exposition').isHidden(), 'no sample to paste when previewing on an agent');
  const formPricing = await page.locator('#spec-pricing_model').inputValue();
  const onSnapshot = { pipeline: { template: 'topk', params: { k: 3 } }, agent_id: agent.id, pricing_model: formPricing };
  // The agent sends its first snapshot shortly after it starts; wait for the server to have it.
  await waitFor('the agent\'s first snapshot', async () => (await fetch(`${base}/api/v1/pipelines/preview`, {
    method: 'POST', headers: { Authorization: `Bearer ${printed.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(onSnapshot),
  })).ok, 90000);
  await page.locator('#preview-button').click();
  await page.waitForSelector('#new-preview-table', { timeout: 15000 });
  const previewCells = await page.locator('#new-preview-table tbody tr').first().locator('td').allTextContents();
  log(`form preview (series): ${previewCells.join(' | ')}`);
  check(/fewer/.test(previewCells[3]), `candidate projected on the snapshot: ${previewCells}`);
  check((await page.locator('#preview-source').textContent()).includes(agent.host), 'the preview names the agent\'s snapshot');
  const costRows = await page.locator('#new-preview-cost tbody tr').evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  log(`form preview (cost): ${costRows.map((r) => r.join(' | ')).join('; ')}`);
  check((await page.locator('#new-preview-cost thead').textContent()).includes(formPricing), 'priced under the form\'s pricing model');
  const amount = (t) => Number(t.replace(/[^0-9.-]/g, ''));
  const list = costRows.find((r) => r[0].startsWith('list price'));
  check(amount(list[3]) > 0 && amount(list[3]) < amount(list[2]), `the candidate lists for less than the baseline: ${list}`);
  check(await page.locator('#preview-result details[data-variant=candidate] pre').textContent().then((t) => t.includes('processors')), 'the candidate\'s Collector config shown');
  await shot('new-experiment-preview');
  await page.locator('#create-button').click();
  const warmupError = page.locator('.field-error[data-for="spec.warmup_secs"]');
  await warmupError.waitFor({ timeout: 10000 });
  check(await page.locator('#spec-warmup_secs').getAttribute('aria-invalid') === 'true', 'the field with the error is marked');
  check(await warmupError.evaluate((e) => e.closest('label').contains(document.getElementById('spec-warmup_secs'))), 'the error sits with its field');
  check(await page.locator('#spec-warmup_secs').getAttribute('aria-describedby') === await warmupError.getAttribute('id'), 'the field is described by its error');
  log(`server field error shown at its field: ${(await warmupError.textContent()).trim()}`);
  await shot('new-experiment-field-error');
  await page.locator('#spec-warmup_secs').fill('10');
  await page.locator('#create-button').click();
  await page.waitForSelector('#experiment-name', { timeout: 15000 });
  const formId = await page.locator('[data-experiment]').first().getAttribute('data-experiment');
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  const fromForm = await api('GET', `experiments/${formId}`);
  check(fromForm.spec.warmup_secs === 10 && fromForm.spec.criteria.length === 1 && fromForm.spec.candidate.params.k === 3
    && JSON.stringify(fromForm.spec.targets.hosts) === JSON.stringify([agent.host]), `created as the form said: ${JSON.stringify(fromForm.spec)}`);
  check(JSON.stringify(await offered()) === JSON.stringify(fromForm.allowed_actions), 'the new experiment offers what the server allows');
  await shot('new-experiment-created');
  await page.locator('form[data-action="start"] button[type=submit]').click();
  await waitFor('the experiment to start', async () => !['created'].includes(await phaseOf(page.locator('#experiment-phase'))), 15000);
  log(`started from the page: ${await phaseOf(page.locator('#experiment-phase'))}`);
  await shot('new-experiment-running');
  await waitFor('the verdict of the form\'s experiment', async () => page.locator('#verdict-outcome').count(), (demoSecs + 60) * 1000);
  const formVerdict = (await page.locator('#verdict-outcome').textContent()).trim();
  log(`verdict ${formVerdict}`);
  check(formVerdict === 'pass', `the form's experiment should pass its one criterion, got ${formVerdict}`);
  await waitFor('promote offered', async () => (await offered()).includes('promote'), 15000);
  await shot('new-experiment-verdict');
  const promoteForm = page.locator('form[data-action="promote"]');
  if (await promoteForm.locator('input[name=reason]').count()) await promoteForm.locator('input[name=reason]').fill('browser test: the form\'s candidate passed');
  await promoteForm.locator('button[type=submit]').click();
  await waitFor('promoted', async () => (await phaseOf(page.locator('#experiment-phase'))) === 'promoted', 60000);
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  log('created from the form, previewed, started, judged and promoted');
  await shot('new-experiment-promoted');

  // 5c. A quick deployment from its page: template and parameters, the selector with the
  //     agent it picks, the batch strategy's defaults from the API; progress per agent
  //     live; then roll it back, offered because the server allows it.
  step = 'quick deployment';
  await page.locator('nav a[data-view=deployments]').click();
  await page.waitForSelector('#deployment-form #deployment-template', { timeout: 15000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const strategyDefault = doc.components.schemas.NewDeployment.properties.strategy.default;
  check(await page.locator('#deployment-initial_batch').inputValue() === String(strategyDefault.initial_batch), 'batch defaults from the API');
  await page.locator('#deployment-name').fill('browser test: topk on this host');
  await page.locator('#deployment-template').selectOption('topk');
  await page.locator('#deployment-param-k').fill('4');
  await page.locator('#deployment-hosts').fill(agent.host);
  await page.locator(`#deployment-matching li[data-agent="${agent.id}"]`).waitFor({ timeout: 10000 });
  await shot('deployment-form');
  await page.locator('#deploy-button').click();
  await page.waitForSelector('[data-deployment] #deployment-name', { timeout: 15000 });
  const deploymentId = await page.locator('[data-deployment]').getAttribute('data-deployment');
  const targetState = () => page.locator(`#deployment-targets tr[data-key="${agent.id}"] [data-state]`).getAttribute('data-state').catch(() => null);
  await waitFor('the agent to run the deployed pipeline', async () => (await targetState()) === 'succeeded', 30000);
  await waitFor('the deployment to complete', async () => (await page.locator('#deployment-state [data-state]').getAttribute('data-state')) === 'completed', 15000);
  const deployed = await api('GET', `pipelines/deployments/${deploymentId}`);
  check(deployed.pipeline.template === 'topk' && deployed.pipeline.params.k === 4, `deployed as the form said: ${JSON.stringify(deployed.pipeline)}`);
  const deploymentOffer = async () => page.locator('#deployment-actions form[data-action]').evaluateAll((fs) => fs.map((f) => f.dataset.action));
  await waitFor('the actions the server allows', async () => JSON.stringify(await deploymentOffer()) === JSON.stringify((await api('GET', `pipelines/deployments/${deploymentId}`)).allowed_actions), 10000);
  log(`deployment completed on ${agent.host}; offered ${await deploymentOffer()}`);
  await shot('deployment-completed');
  await page.locator('#deployment-actions form[data-action="rollback"] button').click();
  await waitFor('the deployment to roll back', async () => (await page.locator('#deployment-state [data-state]').getAttribute('data-state')) === 'rolled_back', 30000);
  check(await targetState() === 'rolled_back', 'the agent shows rolled back');
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  check((await deploymentOffer()).length === 0, 'nothing offered once rolled back');
  log('deployment rolled back, live');
  await shot('deployment-rolled-back');

  // 6. Fleet: the in-process agent with its health and resources.
  step = 'fleet';
  await page.locator('nav a[data-view=fleet]').click();
  const agentRow = page.locator('#agents tbody tr').first();
  await agentRow.waitFor({ timeout: 15000 });
  const status = await agentRow.locator('[data-status]').getAttribute('data-status');
  check(status === 'healthy', `agent healthy, is ${status}`);
  const rowText = await agentRow.textContent();
  check(/\d+(\.\d+)? MiB/.test(rowText), `agent RSS shown: ${rowText}`);
  log(`fleet: agent ${status}`);
  await shot('fleet');

  // 6b. Agent detail: labels, pipelines with health, recent tasks, health readings; an
  //     admin revokes an agent (a second one, enrolled for this) from its page.
  step = 'agent detail';
  await agentRow.locator('a.agent-link').click();
  await page.waitForSelector(`[data-agent="${agent.id}"] #agent-host`, { timeout: 15000 });
  const agentNow = await api('GET', `agents/${agent.id}`);
  for (const [k, v] of Object.entries(agentNow.labels)) {
    check((await page.locator(`#agent-labels [data-label="${k}"]`).textContent()) === `${k}=${v}`, `label ${k} shown`);
  }
  await waitFor('the agent\'s recent tasks', async () => (await page.locator('#agent-tasks tbody tr').count()) > 0, 15000);
  // Health over time: the server's history of the agent's heartbeats, drawn at once.
  const health = await api('GET', `agents/${agent.id}/health`);
  check(health.items.length >= 5, `the server kept the agent's heartbeats: ${health.items.length}`);
  const recorded = Number((await page.locator('#agent-health-count').textContent()).match(/^(\d+)/)[1]);
  check(recorded >= health.items.length - 2, `the page shows the history (${recorded} of ${health.items.length})`);
  check(await page.locator('#agent-status-history tbody tr').count() >= 1, 'a health reading shown');
  check(await page.locator('#chart-agent-cpu circle').count() >= 5, 'CPU over time charted from the history');
  check(await page.locator('#chart-agent-pipelines [data-series=healthy] circle').count() >= 5, 'pipelines by health charted');
  const pipelinesShown = await page.locator('#agent-pipelines tbody tr').count();
  check(pipelinesShown === agentNow.pipelines.length, `pipelines shown ${pipelinesShown}, has ${agentNow.pipelines.length}`);
  log(`agent detail: ${await page.locator('#agent-tasks tbody tr').count()} recent tasks, ${pipelinesShown} pipelines`);
  await shot('agent-detail');
  const enrollment = serverOut.match(/Enrollment token:\s+(\S+)/)[1];
  const spare = await (await fetch(`${base}/api/v1/agent/enroll`, {
    method: 'POST', headers: { Authorization: `Bearer ${enrollment}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ host: 'browser-test-spare', version: 'test', os: 'linux', labels: { role: 'spare' } }),
  })).json();
  await page.goto(`${printed.ui}#/fleet/${spare.agent.id}`);
  await page.waitForSelector('#agent-revoke form[data-action="revoke"]', { timeout: 15000 });
  check(await page.locator('#agent-revoke button[type=submit]').isDisabled(), 'revoke waits for its confirmation');
  await page.locator('#revoke-confirm').check();
  await page.locator('#agent-revoke button[type=submit]').click();
  await waitFor('the agent revoked', async () => (await page.locator('#agent-status [data-status]').getAttribute('data-status')) === 'revoked', 15000);
  check((await api('GET', `agents/${spare.agent.id}`)).revoked, 'the server revoked it');
  check(await page.locator('#agent-revoke').count() === 0, 'nothing left to revoke');
  log('revoked an agent from its page');
  await shot('agent-revoked');

  // 7. Cost flow and cardinality, with a label dimension added.
  step = 'cost';
  await page.locator('nav a[data-view=cost]').click();
  await page.waitForSelector('#cost-summary', { timeout: 20000 });
  const flows = await page.locator('#cost-flows [data-dimension]').count();
  check(flows >= 1, 'cost flows by dimension');
  const keys = await page.locator('#label-keys tbody tr').count();
  check(keys >= 1, 'label keys listed');
  // Raw vs shipped: the table when a host reports what its pipeline ships, else why not.
  const shipping = (await api('GET', 'metrics/cost-flow?pricing_model=grafana-cloud-pro')).shipped;
  check(shipping
    ? (await page.locator('#raw-vs-shipped-table tbody tr').count()) === 3
    : (await page.locator('#raw-vs-shipped .empty').count()) === 1, 'raw vs shipped section shown');
  const firstKey = (await page.locator('#label-keys tbody tr').first().locator('td').first().textContent()).trim();
  await page.locator('#label-keys tbody tr').first().locator('button').click();
  await page.waitForSelector(`#breakdowns [data-dimension="label:${firstKey}"]`, { timeout: 15000 });
  log(`cost flow: ${flows} dimensions; broke down by label ${firstKey}`);
  // A bad pricing model shows the server's validation message.
  await page.locator('#pricing-model').fill('no-such-model');
  await page.locator('#cost-form button[type=submit]').click();
  const modelError = await page.locator('.view .error').first().textContent({ timeout: 10000 });
  check(modelError.includes('no-such-model') && modelError.includes('available'), `pricing error shown: ${modelError}`);
  await page.locator('#pricing-model').fill('grafana-cloud-pro');
  await page.locator('#cost-form button[type=submit]').click();
  await waitFor('the error to clear', async () => (await page.locator('.view .error').count()) === 0, 15000);
  await page.waitForSelector('#cost-summary', { timeout: 15000 });
  await shot('cost');

  // 7b. Cost over time: recorded by the server's controller once a minute from the same
  // host set, with this run's promotion and rollback marked, and the monthly and yearly
  // figures labelled measured or projected.
  step = 'cost-history';
  await waitFor('a recorded cost history point', async () => (await api('GET', 'cost/history')).points.length >= 1, 90000);
  await page.locator('#cost-form button[type=submit]').click();
  await waitFor('the cost-over-time chart', async () => (await page.locator('#cost-history-chart circle').count()) >= 1, 15000);
  const history = await api('GET', 'cost/history');
  const kinds = history.markers.map((m) => m.kind);
  check(kinds.includes('promoted') && kinds.includes('rolled_back'), `promotion and rollback in the history: ${kinds}`);
  const drawn = await page.locator('#cost-history-chart .marker').count();
  check(drawn === history.markers.length, `every marker drawn: ${drawn} of ${history.markers.length}`);
  const figures = await page.locator('#cost-figures').textContent();
  check(/projected|measured/.test(figures) && /USD/.test(figures), `monthly figure labelled: ${figures.slice(0, 200)}`);
  check(history.monthly && ['projected', 'measured'].includes(history.monthly.basis), 'the API labels the monthly figure');
  await page.locator('#cost-history-chart .marker').first().focus();
  check(await page.evaluate(() => document.activeElement?.closest('.marker') !== null), 'markers take keyboard focus');
  log(`cost history: ${history.points.length} hourly points, markers ${kinds.join(', ')}, monthly ${history.monthly.amount} (${history.monthly.basis})`);
  for (const size of WIDTHS) {
    await page.setViewportSize(size);
    const file = join(artefacts, `cost-history-chart-${size.width}.png`);
    await page.locator('#cost-history').screenshot({ path: file });
    log(`screenshot ${file}`);
  }
  await shot('cost-history');

  // 8. Templates: render with a parameter, then preview on the agent's real exposition.
  step = 'templates';
  await page.locator('nav a[data-view=templates]').click();
  await page.locator('#template-picker').selectOption('topk');
  await page.locator('#param-k').fill('5');
  await page.locator('#template-form button[type=submit]').click();
  await page.waitForSelector('#render-valid', { timeout: 15000 });
  check(await page.locator('#render-valid').textContent() === 'valid', 'rendered config is valid');
  check((await page.locator('#rendered-yaml').textContent()).includes('processors'), 'YAML shown');
  const exposition = await (await fetch(printed.baselineUrl)).text();
  check(exposition.includes('process_'), 'the agent serves its baseline exposition');
  await page.locator('#exposition').fill(exposition);
  await page.locator('#preview-button').click();
  await page.waitForSelector('#preview-table', { timeout: 15000 });
  const previewRow = await page.locator('#preview-table tbody tr').first().textContent();
  log(`preview on the agent's exposition: ${previewRow.replace(/\s+/g, ' ')}`);
  await shot('templates');

  // 8b. Queries: import a rule file from a file input; a query that does not parse is
  //     shown at the content field, naming the rule and position; corrected, it imports.
  step = 'queries';
  await page.locator('nav a[data-view=queries]').click();
  await page.waitForSelector('#import-form', { timeout: 15000 });
  const rules = (expr) => `groups:\n  - name: browser\n    rules:\n      - alert: ProcessMemoryHigh\n        expr: ${expr}\n`;
  await page.locator('#import-file').setInputFiles({
    name: 'browser.rules.yml', mimeType: 'text/yaml', buffer: Buffer.from(rules('sum by (process_executable_name) (process_memory_usage > 1e9')),
  });
  await page.waitForFunction(() => document.querySelector('#import-content').value.includes('ProcessMemoryHigh'));
  check(await page.locator('#import-name').inputValue() === 'browser.rules.yml', 'the file name fills the name');
  check(await page.locator('#import-kind').inputValue() === 'rule_file', 'a .yml file is a rule file');
  await page.locator('#import-button').click();
  const parseError = page.locator('.field-error[data-for=content]');
  await parseError.waitFor({ timeout: 15000 });
  const why = await parseError.textContent();
  check(/ProcessMemoryHigh/.test(why) && /does not parse/.test(why), `the parse error names the rule: ${why}`);
  await shot('queries-error');
  await page.locator('#import-content').fill(rules('sum by (process_executable_name) (process_memory_usage) > 1e9'));
  await page.locator('#import-button').click();
  await page.waitForSelector('#import-done', { timeout: 15000 });
  check(await page.locator('.field-error').count() === 0, 'the corrected file imports without errors');
  const source = page.locator('details[data-source="browser.rules.yml"]');
  await source.waitFor({ timeout: 15000 });
  await source.locator('summary').click();
  check((await source.textContent()).includes('process_executable_name'), 'the source lists what its query needs');
  const stored = (await api('GET', 'queries')).items.find((q) => q.name === 'browser.rules.yml');
  check(stored && stored.queries.length === 1, 'the API stores the imported source');
  log('queries: a parse error shown at its field, corrected, imported');
  await shot('queries');

  // 9. A viewer sees no action: the server allows it none.
  step = 'viewer';
  const viewer = await api('POST', 'tokens', { name: 'browser-test-viewer', role: 'viewer' });
  await page.locator('#signout').click();
  await page.locator('#token-input').fill(viewer.secret);
  await page.locator('#login button[type=submit]').click();
  await page.goto(`${printed.ui}#/experiments/${printed.experiment}`);
  await page.waitForSelector('#experiment-name', { timeout: 15000 });
  await page.waitForSelector('#no-actions', { timeout: 15000 });
  check(await page.locator('form[data-action]').count() === 0, 'viewer sees no action form');
  const viewerSees = await api('GET', `experiments/${printed.experiment}`, undefined, viewer.secret);
  check(viewerSees.allowed_actions.length === 0, `a viewer is allowed nothing, got ${viewerSees.allowed_actions}`);
  await page.goto(`${printed.ui}#/experiments`);
  await page.waitForSelector('#experiments', { timeout: 15000 });
  check(await page.locator('#new-experiment-link').count() === 0, 'a viewer is offered no new experiment');
  await page.goto(`${printed.ui}#/deployments`);
  await page.waitForSelector('#deployments', { timeout: 15000 });
  check(await page.locator('#new-deployment').count() === 0, 'a viewer is offered no deployment form');
  await page.goto(`${printed.ui}#/deployments/${deploymentId}`);
  await page.waitForSelector('#no-deployment-actions', { timeout: 15000 });
  check(await page.locator('#deployment-actions form').count() === 0, 'a viewer gets no deployment action');
  await shot('viewer-deployment');
  await page.goto(`${printed.ui}#/fleet/${agent.id}`);
  await page.waitForSelector('#agent-host', { timeout: 15000 });
  check(await page.locator('#agent-revoke').count() === 0, 'a viewer is offered no revoke');
  await page.goto(`${printed.ui}#/queries`);
  await page.waitForSelector('#query-sources', { timeout: 15000 });
  check(await page.locator('#import-form').count() === 0, 'a viewer is offered no import');
  check(await page.locator('[data-delete]').count() === 0, 'a viewer is offered no delete');
  log('viewer: read-only');

  check(problems.length === 0, `browser problems:\n${problems.join('\n')}`);
  log('PASS');
} catch (err) {
  console.error(`FAIL at step "${step}": ${err.message}`);
  if (!(err instanceof Failure)) console.error(err.stack);
  if (problems.length) console.error(`browser problems:\n${problems.join('\n')}`);
  await page.screenshot({ path: join(artefacts, 'failure.png'), fullPage: true }).catch(() => {});
  writeFileSync(join(artefacts, 'server.log'), serverOut);
  console.error(`server output: ${join(artefacts, 'server.log')}`);
  process.exitCode = 1;
} finally {
  await browser.close().catch(() => {});
  server.kill('SIGTERM');
  const exit = await Promise.race([serverExit, new Promise((r) => setTimeout(() => r(null), 15000))]);
  if (!exit) {
    server.kill('SIGKILL');
    console.error('server did not stop on SIGTERM within 15 s');
    process.exitCode = 1;
  }
  writeFileSync(join(artefacts, 'server.log'), serverOut);
}
