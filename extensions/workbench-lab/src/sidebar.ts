/**
 * The sidebar: every endpoint with its versions, split, health, rollout, A/B experiment and firing
 * alerts, live request numbers, and what can be done to it; the runbooks and their recent runs. Cards
 * are rebuilt when the state changes; only their numbers are touched each second, and only their
 * experiment's readout at each new look, so a button is not replaced under a pointer about to click it.
 */
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { Outcome } from './actions';
import { EndpointState, ExperimentInfo, LiveNumbers, SidebarState } from './api';
import { el } from './dom';
import { buttonsKey, readout } from './experiment';
import { Change, LiveState } from './live';

export const COMMANDS = {
  deploy: 'workbench:deploy',
  rollout: 'workbench:start-rollout',
  pause: 'workbench:pause-rollout',
  resume: 'workbench:resume-rollout',
  promote: 'workbench:promote-rollout',
  abort: 'workbench:abort-rollout',
  rollback: 'workbench:rollback',
  pauseExperiment: 'workbench:pause-experiment',
  resumeExperiment: 'workbench:resume-experiment',
  concludeExperiment: 'workbench:conclude-experiment',
  promoteExperiment: 'workbench:promote-experiment',
  dashboard: 'workbench:open-dashboard',
  runbook: 'workbench:run-runbook',
  openRun: 'workbench:open-run',
  refresh: 'workbench:refresh',
  show: 'workbench:show-sidebar'
} as const;

const PALETTE = ['#2563eb', '#f97316', '#10b981', '#a855f7', '#ef4444', '#0ea5e9', '#eab308', '#64748b'];

function color(version: number): string {
  return PALETTE[(version - 1 + PALETTE.length * 100) % PALETTE.length];
}

function fmt(value: number | null, digits = 1, unit = ''): string {
  return value === null || value === undefined ? '–' : `${value.toFixed(digits)}${unit}`;
}

export function splitLabel(endpoint: EndpointState): string {
  const live = endpoint.routes.filter(r => r.weight > 0).sort((a, b) => b.weight - a.weight);
  return live.map(r => `${r.model} v${r.version} ${r.weight}%`).join(' / ') || 'no traffic';
}

export class Sidebar extends Widget {
  private readonly _busy = new Set<string>();
  /** The last action's outcome per endpoint, shown on its card (a toast is easily missed). */
  private readonly _outcomes = new Map<string, Outcome & { at: Date }>();
  private readonly _numbers = new Map<string, HTMLElement>();
  /** Each card's experiment readout, and what its experiment buttons were built for. */
  private readonly _readouts = new Map<string, HTMLElement>();
  private readonly _builtFor = new Map<string, string>();
  private readonly _status: HTMLElement;
  private readonly _endpoints: HTMLElement;
  private readonly _runs: HTMLElement;
  /** Which control last had the keyboard focus (`endpoint|command`), to give it back after a rebuild. */
  private _focusKey: string | null = null;
  /** The sidebar is moving the focus itself: the control it lands on is not the person's choice. */
  private _movingFocus = false;

  constructor(
    private readonly live: LiveState,
    private readonly commands: CommandRegistry
  ) {
    super();
    this.id = 'workbench-sidebar';
    this.addClass('wb-sidebar');
    this.title.caption = 'Workbench: endpoints, rollouts, runbooks';
    const header = el('div', 'wb-sidebar-header');
    header.append(el('h2', '', 'Workbench'));
    const refresh = el('button', 'wb-link', 'refresh');
    refresh.addEventListener('click', () => void this.commands.execute(COMMANDS.refresh));
    header.append(refresh);
    this._status = el('div', 'wb-status');
    this._status.dataset.testid = 'wb-status';
    this._status.setAttribute('role', 'status');
    this._endpoints = el('div', 'wb-endpoints');
    this._runs = el('div', 'wb-runs');
    const runbooks = el('button', 'wb-button', 'Run a runbook…');
    runbooks.dataset.testid = 'wb-run-runbook';
    runbooks.addEventListener('click', () => void this.commands.execute(COMMANDS.runbook));
    this.node.append(header, this._status, this._endpoints, el('h3', '', 'Runbooks'), runbooks, this._runs);
    this.node.addEventListener('focusin', event => {
      if (!this._movingFocus) {
        this._focusKey = (event.target as HTMLElement).dataset?.focusKey ?? null;
      }
    });
    this.live.changed.connect(this._onChange, this);
    this._render();
  }

  /** Shown from the keyboard (the palette's "Show the Sidebar"): the focus goes to its first control. */
  protected onActivateRequest(): void {
    this.focusFirst();
  }

  /** The control that last had the focus, or the first enabled one of the first card, gets it. */
  focusFirst(): void {
    const target =
      (this._focusKey && this._enabled(`[data-focus-key="${CSS.escape(this._focusKey)}"]`)) ||
      this._enabled('.wb-card button') ||
      this._enabled('button');
    target?.focus();
  }

  /** An action on `endpoint` is running: its buttons are blocked until it ends. */
  setBusy(endpoint: string, busy: boolean): void {
    if (busy) {
      this._busy.add(endpoint);
    } else {
      this._busy.delete(endpoint);
    }
    this._render();
  }

  /** What the last action on `endpoint` did, or why it was refused: shown on its card. */
  setOutcome(endpoint: string, outcome: Outcome): void {
    this._outcomes.set(endpoint, { ...outcome, at: new Date() });
    this._render();
  }

  isBusy(endpoint: string): boolean {
    return this._busy.has(endpoint);
  }

  dispose(): void {
    this.live.changed.disconnect(this._onChange, this);
    super.dispose();
  }

  private _onChange(_: LiveState, change: Change): void {
    if (change === 'traffic') {
      this._renderNumbers(this.live.state);
    } else if (change === 'experiments' && this._readoutsOnly(this.live.state)) {
      this._renderReadouts(this.live.state);
    } else {
      this._render();
    }
  }

  /** A new look changed only figures (not which experiment, its state or its winner): no rebuild. */
  private _readoutsOnly(state: SidebarState | null): boolean {
    return (state?.endpoints ?? []).every(
      e => (this._builtFor.get(e.name) ?? '') === buttonsKey(e.experiment)
    );
  }

  private _enabled(selector: string): HTMLElement | null {
    return (
      Array.from(this.node.querySelectorAll<HTMLButtonElement>(selector)).find(b => !b.disabled) ?? null
    );
  }

  /**
   * Cards are rebuilt when the state changes, which would drop the keyboard focus on the floor (the
   * body): the control that had it gets it back, or, if it is now disabled (a rollout started), the
   * first control of the same card. Focus elsewhere (a notebook, a dialog) is left alone.
   */
  private _restoreFocus(): void {
    const active = document.activeElement;
    const lost = !active || active === document.body || !active.isConnected;
    if (this._focusKey && lost) {
      this._focusCard(this._focusKey.split('|')[0]);
    }
  }

  /** The control of `endpoint`'s card that last had the focus, or its first one enabled. */
  private _focusCard(endpoint: string): void {
    if (!this.isVisible) {
      return;
    }
    const key = this._focusKey?.startsWith(`${endpoint}|`) ? CSS.escape(this._focusKey) : null;
    const target =
      (key && this._enabled(`[data-focus-key="${key}"]`)) ||
      this._enabled(`[data-endpoint="${CSS.escape(endpoint)}"] button`);
    this._movingFocus = true;
    try {
      target?.focus();
    } finally {
      this._movingFocus = false;
    }
  }

  private _render(): void {
    this._renderContent();
    this._restoreFocus();
  }

  private _renderContent(): void {
    const state = this.live.state;
    const problem = this.live.problem;
    this._status.textContent = problem
      ? `⚠ ${problem}`
      : state
        ? `live · ${state.endpoints.length} endpoint(s)`
        : 'connecting…';
    this._status.classList.toggle('wb-problem', Boolean(problem));
    // The last state known stays on screen while it cannot be refreshed, dimmed so it is not taken as live.
    this._endpoints.classList.toggle('wb-stale', Boolean(problem && state));
    this._endpoints.replaceChildren();
    this._numbers.clear();
    this._readouts.clear();
    this._builtFor.clear();
    if (!state) {
      return;
    }
    if (!state.endpoints.length) {
      this._endpoints.append(el('p', 'wb-muted', 'No endpoints yet: deploy a model from the command palette.'));
    }
    for (const endpoint of state.endpoints) {
      this._endpoints.append(this._card(endpoint));
    }
    this._renderRuns(state);
    this._renderNumbers(state);
  }

  private _card(endpoint: EndpointState): HTMLElement {
    const card = el('div', 'wb-card');
    card.dataset.endpoint = endpoint.name;
    card.dataset.testid = `wb-endpoint-${endpoint.name}`;
    card.setAttribute('role', 'group');
    card.setAttribute('aria-label', `endpoint ${endpoint.name}`);
    const title = el('div', 'wb-card-title');
    const name = el('b', '', endpoint.name);
    title.append(name, el('span', 'wb-muted', ` rev ${endpoint.revision}`));
    const ready = endpoint.replicas_ready === endpoint.replicas && endpoint.replicas > 0;
    const health = el(
      'span',
      `wb-badge ${ready ? 'wb-ok' : endpoint.replicas ? 'wb-warn' : ''}`,
      endpoint.replicas ? `${endpoint.replicas_ready}/${endpoint.replicas} ready` : 'no replicas'
    );
    health.title = endpoint.devices.join(', ') || 'no device reported';
    title.append(health);
    card.append(title);

    const bar = el('div', 'wb-split');
    for (const route of endpoint.routes.filter(r => r.weight > 0)) {
      const part = el('div', '', `v${route.version} ${route.weight}%`);
      part.style.width = `${route.weight}%`;
      part.style.background = color(route.version);
      part.title = `${route.model} v${route.version}: ${route.weight}%`;
      bar.append(part);
    }
    card.append(bar);
    const split = el('div', 'wb-small', splitLabel(endpoint));
    split.dataset.testid = 'wb-split';
    card.append(split);
    if (endpoint.shadows.length) {
      card.append(el('div', 'wb-small', `shadow: ${endpoint.shadows.join(', ')}`));
    }

    const rollout = endpoint.rollout;
    if (rollout) {
      const line = el('div', 'wb-rollout');
      line.dataset.testid = 'wb-rollout';
      const progress = rollout.steps ? ` · step ${rollout.step}/${rollout.steps}` : '';
      line.textContent = `${rollout.strategy.replace('_', '-')} of ${rollout.candidate}: ${rollout.phase}${progress}`;
      card.append(line);
      if (rollout.steps) {
        const meter = el('progress', 'wb-progress') as HTMLProgressElement;
        meter.max = rollout.steps;
        meter.value = Math.min(rollout.step, rollout.steps);
        card.append(meter);
      }
    }
    if (endpoint.firing.length) {
      const alerts = el('div', 'wb-alerts', `firing: ${endpoint.firing.join(', ')}`);
      alerts.dataset.testid = 'wb-firing';
      card.append(alerts);
    }
    const numbers = el('div', 'wb-numbers');
    numbers.dataset.testid = 'wb-numbers';
    this._numbers.set(endpoint.name, numbers);
    card.append(numbers);
    card.append(this._buttons(endpoint));
    if (endpoint.experiment) {
      card.append(this._experiment(endpoint, endpoint.experiment));
    }
    const outcome = this._outcomes.get(endpoint.name);
    if (outcome) {
      const line = el('div', `wb-outcome ${outcome.ok ? 'wb-done' : 'wb-problem'}`);
      line.dataset.testid = 'wb-outcome';
      line.setAttribute('role', 'status');
      line.textContent = `${outcome.at.toLocaleTimeString()} ${outcome.ok ? '✓' : '✗'} ${outcome.message}`;
      card.append(line);
    }
    return card;
  }

  private _experiment(endpoint: EndpointState, experiment: ExperimentInfo): HTMLElement {
    const box = el('div', `wb-experiment wb-experiment-${experiment.state}`);
    box.dataset.testid = 'wb-experiment';
    box.dataset.experiment = experiment.name;
    const title = el('div', 'wb-experiment-title');
    const state = el('span', 'wb-badge', experiment.state);
    state.dataset.testid = 'wb-experiment-state';
    title.append(el('b', '', 'A/B '), experiment.name, ' ', state);
    const live = el('div', 'wb-experiment-readout');
    live.replaceChildren(...readout(experiment));
    this._readouts.set(endpoint.name, live);
    this._builtFor.set(endpoint.name, buttonsKey(experiment));
    const running = experiment.state === 'running';
    const open = experiment.state !== 'concluded';
    // Named "Pause A/B (endpoint)" and so on for assistive technology and tests: the rollout's own
    // Pause and Resume are on the same card.
    const buttons: [string, string, boolean, string][] = [
      running
        ? ['Pause', COMMANDS.pauseExperiment, true, 'stop assigning units; the baseline gets the traffic back']
        : ['Resume', COMMANDS.resumeExperiment, open, 'assign units again'],
      ['Conclude', COMMANDS.concludeExperiment, open, 'end it with the decision of a last look'],
      [
        'Promote winner',
        COMMANDS.promoteExperiment,
        Boolean(experiment.winner),
        experiment.winner
          ? `roll ${experiment.winner} out through a canary`
          : 'no winner yet: nothing to promote'
      ],
      ['Experiment', COMMANDS.dashboard, true, 'the experiment’s dashboard, in a tab']
    ];
    const row = this._buttonRow(endpoint, buttons, { experiment: experiment.name }, label =>
      ['Pause', 'Resume', 'Conclude'].includes(label) ? `${label} A/B` : label
    );
    row.dataset.testid = 'wb-experiment-actions';
    box.append(title, live, row);
    return box;
  }

  private _renderReadouts(state: SidebarState | null): void {
    for (const endpoint of state?.endpoints ?? []) {
      const target = this._readouts.get(endpoint.name);
      if (target && endpoint.experiment) {
        target.replaceChildren(...readout(endpoint.experiment));
      }
    }
  }

  private _buttons(endpoint: EndpointState): HTMLElement {
    const phase = endpoint.rollout?.phase ?? null;
    const active = endpoint.rollout !== null; // the state carries only an active rollout
    // An A/B experiment holds the endpoint's traffic while it runs or pauses: no rollout under it.
    const experiment = endpoint.experiment && endpoint.experiment.state !== 'concluded';
    const buttons: [string, string, boolean, string][] = [
      ['Deploy…', COMMANDS.deploy, true, ''],
      [
        'Rollout…',
        COMMANDS.rollout,
        !active && !experiment,
        experiment ? 'the A/B experiment holds the traffic: conclude it first' : ''
      ],
      ['Pause', COMMANDS.pause, phase === 'progressing' || phase === 'pending', ''],
      ['Resume', COMMANDS.resume, phase === 'paused' || phase === 'inconclusive', ''],
      ['Promote', COMMANDS.promote, active, ''],
      ['Abort', COMMANDS.abort, active, ''],
      ['Roll back', COMMANDS.rollback, true, ''],
      ['Dashboard', COMMANDS.dashboard, true, '']
    ];
    return this._buttonRow(endpoint, buttons);
  }

  /** Buttons, each `[label, command, enabled, hint]`, running its command on the endpoint (and `extra`). */
  private _buttonRow(
    endpoint: EndpointState,
    buttons: [string, string, boolean, string][],
    extra: Record<string, string> = {},
    named: (label: string) => string = label => label
  ): HTMLElement {
    const row = el('div', 'wb-actions');
    const busy = this._busy.has(endpoint.name);
    for (const [label, command, enabled, hint] of buttons) {
      const blocked = busy && command !== COMMANDS.dashboard;
      const button = el('button', 'wb-button', blocked ? '…' : label);
      button.dataset.command = command;
      button.dataset.focusKey = `${endpoint.name}|${command}|${extra.experiment ?? ''}`;
      button.setAttribute('aria-label', `${named(label)} (${endpoint.name})`);
      if (hint) {
        button.title = hint;
      }
      if (blocked) {
        button.setAttribute('aria-busy', 'true');
        button.title = 'an action on this endpoint is running';
      }
      button.disabled = !enabled || blocked;
      if (command === COMMANDS.rollback) {
        button.classList.add('wb-danger');
      }
      // When the action ends (done, refused or cancelled), the focus goes back to the card, as a dialog
      // gives it back to what opened it: the button it came from was rebuilt meanwhile, and JupyterLab
      // would hand the focus to the main area.
      button.addEventListener('click', () => {
        const done = this.commands.execute(command, { endpoint: endpoint.name, ...extra });
        if (command !== COMMANDS.dashboard) {
          void done.catch(() => undefined).then(() => this._focusCard(endpoint.name));
        }
      });
      row.append(button);
    }
    return row;
  }

  private _renderNumbers(state: SidebarState | null): void {
    if (!state) {
      return;
    }
    for (const endpoint of state.endpoints) {
      const target = this._numbers.get(endpoint.name);
      if (target) {
        target.replaceChildren(...numberCells(endpoint));
      }
    }
  }

  private _renderRuns(state: SidebarState): void {
    this._runs.replaceChildren();
    if (!state.runs.length) {
      this._runs.append(el('p', 'wb-muted', 'No runs yet.'));
      return;
    }
    for (const run of state.runs) {
      const row = el('div', 'wb-run');
      row.dataset.testid = `wb-run-${run.id}`;
      const status = el('span', `wb-badge wb-run-${run.status}`, run.status);
      const name = el('b', '', run.runbook);
      const detail = el('span', 'wb-muted', ` ${run.trigger}${run.endpoint ? ` · ${run.endpoint}` : ''}`);
      row.append(status, ' ', name, detail);
      if (run.summary) {
        const text = Object.entries(run.summary)
          .map(([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' · ');
        row.append(el('div', 'wb-small', text));
      }
      if (['succeeded', 'failed', 'cancelled', 'timed_out'].includes(run.status)) {
        const open = el('button', 'wb-link', 'open notebook');
        open.addEventListener('click', () => void this.commands.execute(COMMANDS.openRun, { run: run.id }));
        row.append(open);
      }
      this._runs.append(row);
    }
  }
}

function numberCells(numbers: LiveNumbers): HTMLElement[] {
  const cells: [string, string, string][] = [
    [String(numbers.requests_total), 'requests', 'wb-requests'],
    [fmt(numbers.requests_per_s, 1), 'req/s', 'wb-rps'],
    [fmt(numbers.p95_ms, 1), 'p95 ms', 'wb-p95'],
    [numbers.error_rate === null ? '–' : `${(numbers.error_rate * 100).toFixed(1)}%`, 'errors', 'wb-errors']
  ];
  return cells.map(([value, label, testid]) => {
    const cell = el('span', 'wb-stat');
    const strong = el('b', '', value);
    strong.dataset.testid = testid;
    cell.append(strong, el('small', '', label));
    return cell;
  });
}
