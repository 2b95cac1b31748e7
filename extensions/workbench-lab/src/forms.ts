/**
 * Small forms in dialogs: what to deploy or roll out (a model and a version or alias, a strategy and
 * its steps), and a runbook's parameters, built from what the runbook declares (type, default, help).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { Ask, RunbookParameter, SidebarState } from './api';

function field(label: string, control: HTMLElement, help = ''): HTMLElement {
  const row = document.createElement('label');
  row.className = 'wb-field';
  const name = document.createElement('span');
  name.textContent = label;
  row.append(name, control);
  if (help) {
    const note = document.createElement('small');
    note.textContent = help;
    row.append(note);
  }
  return row;
}

function select(options: [string, string][], value?: string): HTMLSelectElement {
  const element = document.createElement('select');
  for (const [label, optionValue] of options) {
    const option = document.createElement('option');
    option.textContent = label;
    option.value = optionValue;
    element.append(option);
  }
  if (value !== undefined) {
    element.value = value;
  }
  return element;
}

class FormBody<T> extends Widget {
  constructor(
    node: HTMLElement,
    private readonly read: () => T
  ) {
    super({ node });
  }

  getValue(): T {
    return this.read();
  }
}

/** Deploy now, or start a canary / blue-green / shadow rollout, of a version on `endpoint`. */
export async function chooseChange(
  endpoint: string,
  state: SidebarState,
  strategy: 'deploy' | 'canary' | 'blue_green' | 'shadow' = 'canary',
  model?: string,
  version?: number
): Promise<Ask | null> {
  const models = Object.keys(state.models).sort();
  if (!models.length) {
    await showDialog({
      title: 'Nothing to deploy',
      body: 'No model is registered yet.',
      buttons: [Dialog.okButton()]
    });
    return null;
  }
  const node = document.createElement('div');
  node.className = 'wb-form';
  const modelSelect = select(
    models.map(name => [name, name]),
    model ?? models[0]
  );
  const versionSelect = document.createElement('select');
  const fillVersions = (): void => {
    versionSelect.replaceChildren();
    for (const choice of state.models[modelSelect.value] ?? []) {
      const option = document.createElement('option');
      option.textContent = choice.label;
      option.value = String(choice.version);
      versionSelect.append(option);
    }
    if (version !== undefined && modelSelect.value === model) {
      versionSelect.value = String(version);
    }
  };
  fillVersions();
  modelSelect.addEventListener('change', fillVersions);
  const strategySelect = select(
    [
      ['deploy now (all traffic at once)', 'deploy'],
      ['canary', 'canary'],
      ['blue-green', 'blue_green'],
      ['shadow', 'shadow']
    ],
    strategy
  );
  const steps = document.createElement('input');
  steps.value = '5, 25, 50';
  const stepsRow = field('Canary steps (%)', steps, 'increasing, each below 100');
  const showSteps = (): void => {
    stepsRow.style.display = strategySelect.value === 'canary' ? '' : 'none';
  };
  showSteps();
  strategySelect.addEventListener('change', showSteps);
  node.append(
    field('Model', modelSelect),
    field('Version', versionSelect),
    field('How', strategySelect),
    stepsRow
  );
  const answer = await showDialog({
    title: `Change what ${endpoint} serves`,
    body: new FormBody(node, () => null),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Preview' })]
  });
  if (!answer.button.accept || !versionSelect.value) {
    return null;
  }
  const chosen = { endpoint, model: modelSelect.value, version: Number(versionSelect.value) };
  if (strategySelect.value === 'deploy') {
    return { kind: 'deploy', ...chosen };
  }
  return { kind: 'rollout', ...chosen, strategy: strategySelect.value, steps: steps.value };
}

/** The runbook's parameters as typed values; throws with the parameter's name when one does not parse. */
export function parseParameters(
  parameters: RunbookParameter[],
  raw: Record<string, string | boolean>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const parameter of parameters) {
    const value = raw[parameter.name];
    if (value === undefined || value === '') {
      continue; // the runbook's own default
    }
    const kind = (parameter.type ?? '').trim();
    if (kind === 'bool') {
      out[parameter.name] = Boolean(value);
    } else if (kind === 'int') {
      const number = Number(value);
      if (!Number.isInteger(number)) {
        throw new Error(`${parameter.name} must be a whole number`);
      }
      out[parameter.name] = number;
    } else if (kind === 'float') {
      const number = Number(value);
      if (!Number.isFinite(number)) {
        throw new Error(`${parameter.name} must be a number`);
      }
      out[parameter.name] = number;
    } else if (kind === 'list' || kind === 'dict') {
      try {
        out[parameter.name] = JSON.parse(String(value));
      } catch {
        throw new Error(`${parameter.name} must be JSON (a ${kind})`);
      }
    } else {
      out[parameter.name] = String(value);
    }
  }
  return out;
}

function unquote(text: string): string {
  const trimmed = text.trim();
  if (/^(["']).*\1$/.test(trimmed)) {
    return trimmed.slice(1, -1);
  }
  return trimmed;
}

/** A runbook's form; resolves with the raw values (parsed by `parseParameters`) or null if cancelled. */
export async function runbookForm(
  title: string,
  parameters: RunbookParameter[]
): Promise<Record<string, string | boolean> | null> {
  const node = document.createElement('div');
  node.className = 'wb-form';
  const controls = new Map<string, HTMLInputElement>();
  for (const parameter of parameters) {
    const input = document.createElement('input');
    input.name = parameter.name;
    if ((parameter.type ?? '').trim() === 'bool') {
      input.type = 'checkbox';
      input.checked = parameter.default.trim() === 'True';
    } else {
      input.placeholder = unquote(parameter.default);
    }
    controls.set(parameter.name, input);
    const kind = parameter.type ? ` (${parameter.type})` : '';
    node.append(field(`${parameter.name}${kind}`, input, parameter.help));
  }
  const answer = await showDialog({
    title: `Run ${title}`,
    body: new FormBody(node, () => null),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })]
  });
  if (!answer.button.accept) {
    return null;
  }
  const raw: Record<string, string | boolean> = {};
  for (const [name, input] of controls) {
    raw[name] = input.type === 'checkbox' ? input.checked : input.value;
  }
  return raw;
}
