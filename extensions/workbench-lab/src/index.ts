/**
 * The workbench in JupyterLab: a sidebar of endpoints (with their rollouts and A/B experiments) and
 * runbooks, every action as a command (palette, buttons, keyboard), dashboards in main-area tabs, a
 * registry browser, and "Run as runbook" on the notebooks of a runbooks directory.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IFrame,
  InputDialog,
  MainAreaWidget,
  Notification,
  ToolbarButton
} from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { act, refused } from './actions';
import { Ask, api, newKey } from './api';
import { chooseChange, parseParameters, runbookForm } from './forms';
import { LiveState } from './live';
import { ModelsBrowser } from './models';
import { COMMANDS, Sidebar } from './sidebar';

const ICON = new LabIcon({
  name: 'workbench:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="3" y="13" width="4" height="8" rx="1"/><rect x="10" y="8" width="4" height="13" rx="1"/>' +
    '<rect x="17" y="3" width="4" height="18" rx="1"/></g></svg>'
});

const DASHBOARD_PAGES: [string, string][] = [
  ['overview', 'Overview'],
  ['endpoint', 'Endpoint'],
  ['rollout', 'Rollout'],
  ['drift', 'Drift & performance'],
  ['experiments', 'Experiments'],
  ['operations', 'Runbooks & audit']
];
const EXPERIMENT_ACTIONS: [keyof typeof COMMANDS, 'pause' | 'resume' | 'conclude' | 'promote', string][] = [
  ['pauseExperiment', 'pause', 'Workbench: Pause the A/B Experiment'],
  ['resumeExperiment', 'resume', 'Workbench: Resume the A/B Experiment'],
  ['concludeExperiment', 'conclude', 'Workbench: Conclude the A/B Experiment'],
  ['promoteExperiment', 'promote', 'Workbench: Promote the A/B Experiment’s Winner (canary)']
];
const RUN_ENDED = ['succeeded', 'failed', 'cancelled', 'timed_out'];

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-workbench:plugin',
  description: 'Endpoints, rollouts and runbooks of the workbench in JupyterLab.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    docs: IDocumentManager,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const live = new LiveState();
    const sidebar = new Sidebar(live, app.commands);
    sidebar.title.icon = ICON;
    app.shell.add(sidebar, 'left', { rank: 900 });
    restorer?.add(sidebar, 'workbench-sidebar');

    const endpointOf = async (args: Record<string, unknown>): Promise<string | null> => {
      if (typeof args.endpoint === 'string' && args.endpoint) {
        return args.endpoint;
      }
      const names = live.state?.endpoints.map(e => e.name) ?? [];
      if (!names.length) {
        const typed = await InputDialog.getText({ title: 'Endpoint name' });
        return typed.button.accept ? typed.value : null;
      }
      const chosen = await InputDialog.getItem({ title: 'Which endpoint?', items: names });
      return chosen.button.accept ? chosen.value : null;
    };

    const run = async (ask: Ask): Promise<void> => {
      if (sidebar.isBusy(ask.endpoint)) {
        return; // blocked while its last action runs
      }
      const outcome = await act(ask, busy => sidebar.setBusy(ask.endpoint, busy));
      if (outcome) {
        sidebar.setOutcome(ask.endpoint, outcome);
      }
    };

    const change = (strategy: 'deploy' | 'canary') => async (args: Record<string, unknown>) => {
      const endpoint = await endpointOf(args);
      const state = live.state ?? (await api.state().catch(() => null));
      if (!endpoint || !state) {
        return;
      }
      const model = typeof args.model === 'string' ? args.model : undefined;
      const version = typeof args.version === 'number' ? args.version : undefined;
      const ask = await chooseChange(endpoint, state, strategy, model, version);
      if (ask) {
        await run(ask);
      }
    };

    app.commands.addCommand(COMMANDS.deploy, {
      label: 'Workbench: Deploy a Model Version…',
      execute: change('deploy')
    });
    app.commands.addCommand(COMMANDS.rollout, {
      label: 'Workbench: Start a Rollout…',
      execute: change('canary')
    });
    for (const action of ['pause', 'resume', 'promote', 'abort'] as const) {
      app.commands.addCommand(COMMANDS[action], {
        label: `Workbench: ${action[0].toUpperCase()}${action.slice(1)} the Rollout`,
        execute: async args => {
          const endpoint = await endpointOf(args);
          if (endpoint) {
            await run({ kind: 'rollout_action', endpoint, action });
          }
        }
      });
    }
    // An experiment's actions: on the card's experiment, or, from the palette, on the endpoint chosen
    // among those with one (the server finds its experiment).
    const experimentEndpointOf = async (args: Record<string, unknown>): Promise<string | null> => {
      if (typeof args.endpoint === 'string' && args.endpoint) {
        return args.endpoint;
      }
      const names = live.state?.endpoints.filter(e => e.experiment).map(e => e.name) ?? [];
      return endpointOf(names.length === 1 ? { endpoint: names[0] } : args);
    };
    for (const [command, action, label] of EXPERIMENT_ACTIONS) {
      app.commands.addCommand(COMMANDS[command], {
        label,
        execute: async args => {
          const endpoint = await experimentEndpointOf(args);
          if (endpoint) {
            const experiment = typeof args.experiment === 'string' ? args.experiment : undefined;
            await run({ kind: 'experiment_action', endpoint, action, experiment });
          }
        }
      });
    }
    app.commands.addCommand(COMMANDS.rollback, {
      label: 'Workbench: Roll Back an Endpoint',
      execute: async args => {
        const endpoint = await endpointOf(args);
        if (endpoint) {
          await run({ kind: 'rollback', endpoint });
        }
      }
    });

    app.commands.addCommand(COMMANDS.dashboard, {
      label: args => (args.page ? `Workbench Dashboard: ${String(args.page)}` : 'Workbench: Open a Dashboard…'),
      execute: async args => {
        let page = typeof args.page === 'string' ? args.page : '';
        const experiment = typeof args.experiment === 'string' ? args.experiment : '';
        if (!page) {
          page = experiment ? 'experiments' : args.endpoint ? 'endpoint' : '';
        }
        if (!page) {
          const chosen = await InputDialog.getItem({
            title: 'Which dashboard?',
            items: DASHBOARD_PAGES.map(([, title]) => title)
          });
          if (!chosen.button.accept) {
            return;
          }
          page = DASHBOARD_PAGES.find(([, title]) => title === chosen.value)?.[0] ?? 'overview';
        }
        // The page's subject: an experiment's page names the experiment, the others the endpoint.
        const endpoint = typeof args.endpoint === 'string' ? args.endpoint : '';
        const subject = page === 'experiments' ? experiment : endpoint;
        const query = subject ? `?name=${encodeURIComponent(subject)}` : '';
        const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups'] });
        frame.url = URLExt.join(ServerConnection.makeSettings().baseUrl, 'workbench', 'dashboards', page) + query;
        const widget = new MainAreaWidget({ content: frame });
        const title =
          page === 'experiments' && subject
            ? 'Experiment'
            : DASHBOARD_PAGES.find(([name]) => name === page)?.[1] ?? page;
        widget.id = `workbench-dashboard-${page}-${Date.now()}`;
        widget.title.label = `${title}${subject ? `: ${subject}` : ''}`;
        widget.title.icon = ICON;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    const openRun = async (id: string): Promise<void> => {
      try {
        const opened = await api.openRun(id);
        docs.openOrReveal(opened.path);
      } catch (error) {
        Notification.error(refused(error).message, { autoClose: 8000 });
      }
    };

    app.commands.addCommand(COMMANDS.openRun, {
      label: 'Workbench: Open a Run’s Executed Notebook',
      execute: async args => {
        if (typeof args.run === 'string') {
          await openRun(args.run);
        }
      }
    });

    app.commands.addCommand(COMMANDS.runbook, {
      label: args => (args.runbook ? `Run Runbook ${String(args.runbook)}` : 'Workbench: Run a Runbook…'),
      execute: async args => {
        let runbooks;
        try {
          runbooks = await api.runbooks();
        } catch (error) {
          Notification.error(refused(error).message, { autoClose: 8000 });
          return;
        }
        let name = typeof args.runbook === 'string' ? args.runbook : '';
        if (!name) {
          const chosen = await InputDialog.getItem({
            title: 'Which runbook?',
            items: runbooks.map(r => r.name)
          });
          if (!chosen.button.accept || !chosen.value) {
            return;
          }
          name = chosen.value;
        }
        const runbook = runbooks.find(r => r.name === name);
        if (!runbook) {
          Notification.error(`No runbook named ${name}`, { autoClose: 8000 });
          return;
        }
        const raw = await runbookForm(runbook.title || runbook.name, runbook.parameters);
        if (!raw) {
          return;
        }
        let parameters;
        try {
          parameters = parseParameters(runbook.parameters, raw);
        } catch (error) {
          Notification.error(`Not started: ${(error as Error).message}`, { autoClose: 8000 });
          return;
        }
        let started;
        try {
          started = await api.runRunbook(name, parameters, newKey());
        } catch (error) {
          Notification.error(refused(error).message, { autoClose: 10000 });
          return;
        }
        const note = Notification.emit(`Runbook ${name}: running (${started.id})`, 'in-progress', {
          autoClose: false
        });
        let record = started;
        while (!RUN_ENDED.includes(record.status)) {
          try {
            record = await api.run(started.id, 10);
          } catch (error) {
            Notification.update({ id: note, message: refused(error).message, type: 'error' });
            return;
          }
        }
        Notification.update({
          id: note,
          message: `Runbook ${name}: ${record.status}${record.error ? ` (${record.error})` : ''}`,
          type: record.status === 'succeeded' ? 'success' : 'error',
          autoClose: 8000
        });
        await openRun(started.id);
      }
    });

    app.commands.addCommand(COMMANDS.show, {
      label: 'Workbench: Show the Sidebar',
      execute: () => {
        app.shell.activateById(sidebar.id);
        // Run from the palette, the palette then gives the focus back to the widget it came from (in
        // the same animation frame as this activation): take it once that is done.
        requestAnimationFrame(() => window.setTimeout(() => sidebar.focusFirst(), 0));
      }
    });

    app.commands.addCommand(COMMANDS.refresh, {
      label: 'Workbench: Refresh',
      execute: () => live.reload()
    });

    app.commands.addCommand('workbench:open-models', {
      label: 'Workbench: Browse the Model Registry',
      execute: () => {
        const browser = new ModelsBrowser(app.commands);
        const widget = new MainAreaWidget({ content: browser });
        widget.id = `workbench-models-${Date.now()}`;
        widget.title.label = 'Model registry';
        widget.title.icon = ICON;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    app.docRegistry.addWidgetExtension('Notebook', new RunAsRunbook(app));

    if (palette) {
      const category = 'Workbench';
      for (const command of [
        COMMANDS.show,
        COMMANDS.deploy,
        COMMANDS.rollout,
        COMMANDS.pause,
        COMMANDS.resume,
        COMMANDS.promote,
        COMMANDS.abort,
        COMMANDS.rollback,
        ...EXPERIMENT_ACTIONS.map(([command]) => COMMANDS[command]),
        COMMANDS.runbook,
        COMMANDS.refresh,
        'workbench:open-models'
      ]) {
        palette.addItem({ command, category });
      }
      for (const [page] of DASHBOARD_PAGES) {
        palette.addItem({ command: COMMANDS.dashboard, category, args: { page } });
      }
    }
  }
};

/** "Run as runbook" on a notebook that lives in a `runbooks` directory: its name is the runbook's. */
class RunAsRunbook implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel, context: DocumentRegistry.IContext<INotebookModel>): IDisposable {
    const parts = context.path.split('/');
    if (parts.length < 2 || parts[parts.length - 2] !== 'runbooks') {
      return new DisposableDelegate(() => undefined);
    }
    const runbook = parts[parts.length - 1].replace(/\.ipynb$/, '');
    const button = new ToolbarButton({
      label: 'Run as runbook',
      tooltip: `Run ${runbook} through the workbench: parameters, archive, audit`,
      onClick: () => void this.app.commands.execute(COMMANDS.runbook, { runbook })
    });
    panel.toolbar.insertItem(10, 'workbench-run-as-runbook', button);
    return new DisposableDelegate(() => button.dispose());
  }
}

export default plugin;
