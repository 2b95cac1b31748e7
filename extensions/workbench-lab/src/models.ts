/**
 * The registry browser: each model's versions with their aliases, metrics and lineage, and "Deploy" or
 * "Start rollout" from a version (on an endpoint chosen then, through the same commands as the sidebar).
 */
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { api } from './api';
import { refused } from './actions';
import { COMMANDS } from './sidebar';

interface VersionInfo {
  version: number;
  aliases?: string[];
  metrics?: Record<string, number>;
  run_id?: string | null;
  source?: string | null;
  lineage?: Record<string, unknown> | null;
  created_at?: string;
  description?: string | null;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

export class ModelsBrowser extends Widget {
  constructor(private readonly commands: CommandRegistry) {
    super();
    this.addClass('wb-models');
    this.node.dataset.testid = 'wb-models';
    void this.load();
  }

  async load(): Promise<void> {
    this.node.replaceChildren(el('h2', '', 'Model registry'));
    let models;
    try {
      models = await api.models();
    } catch (error) {
      this.node.append(el('p', 'wb-problem', refused(error).message));
      return;
    }
    if (!models.length) {
      this.node.append(el('p', 'wb-muted', 'No model is registered yet.'));
    }
    for (const model of models) {
      const section = el('section', 'wb-model');
      section.append(el('h3', '', model.name));
      this.node.append(section);
      try {
        const detail = (await api.model(model.name)) as { versions?: VersionInfo[] };
        section.append(this.table(model.name, detail.versions ?? []));
      } catch (error) {
        section.append(el('p', 'wb-problem', refused(error).message));
      }
    }
  }

  private table(model: string, versions: VersionInfo[]): HTMLElement {
    const table = el('table', 'wb-table');
    const head = el('tr');
    for (const title of ['version', 'aliases', 'metrics', 'lineage', '']) {
      head.append(el('th', '', title));
    }
    table.append(head);
    for (const info of versions) {
      const row = el('tr');
      row.dataset.testid = `wb-version-${model}-${info.version}`;
      const metrics = Object.entries(info.metrics ?? {})
        .map(([name, value]) => `${name} ${Number(value).toPrecision(4)}`)
        .join(', ');
      const lineage = info.lineage ? JSON.stringify(info.lineage) : info.run_id ? `run ${info.run_id}` : '';
      row.append(
        el('td', '', `v${info.version}`),
        el('td', '', (info.aliases ?? []).map(a => `@${a}`).join(' ')),
        el('td', '', metrics),
        el('td', 'wb-small', lineage)
      );
      const actions = el('td');
      const deploy = el('button', 'wb-button', 'Deploy…');
      deploy.addEventListener('click', () =>
        void this.commands.execute(COMMANDS.deploy, { model, version: info.version })
      );
      const rollout = el('button', 'wb-button', 'Start rollout…');
      rollout.addEventListener('click', () =>
        void this.commands.execute(COMMANDS.rollout, { model, version: info.version })
      );
      actions.append(deploy, rollout);
      row.append(actions);
      table.append(row);
    }
    return table;
  }
}
