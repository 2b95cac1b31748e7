/**
 * Every action goes the same way: the server previews it (routes before → after, from the control
 * plane's current state), a dialog asks for confirmation, and the confirmation is sent with one
 * idempotency key, so a double click or a retry runs it once. The outcome, or the refusal, is shown.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { Ask, Preview, WorkbenchError, api, newKey } from './api';

export interface Outcome {
  ok: boolean;
  message: string;
}

function previewBody(preview: Preview): Widget {
  const body = document.createElement('div');
  body.className = 'wb-preview';
  const traffic = document.createElement('div');
  traffic.className = 'wb-preview-traffic';
  if (preview.changes_traffic) {
    traffic.append('traffic: ');
    const before = document.createElement('b');
    before.textContent = preview.routes_before;
    const after = document.createElement('b');
    after.textContent = preview.routes_after;
    traffic.append(before, ' → ', after);
  } else {
    traffic.textContent = `traffic: ${preview.routes_before} (unchanged)`;
  }
  const detail = document.createElement('div');
  detail.className = 'wb-preview-detail';
  detail.textContent = preview.detail;
  body.append(traffic, detail);
  body.dataset.testid = 'wb-preview';
  return new Widget({ node: body });
}

/**
 * Preview `ask`, confirm it, run it. `busy` is told when the action starts and ends (the caller blocks
 * its button meanwhile). Resolves with what happened; never throws.
 */
export async function act(ask: Ask, busy: (running: boolean) => void): Promise<Outcome | null> {
  busy(true);
  try {
    let proposal;
    try {
      proposal = await api.preview(ask);
    } catch (error) {
      const outcome = refused(error);
      Notification.error(outcome.message, { autoClose: 8000 });
      return outcome;
    }
    const preview = proposal.preview;
    const answer = await showDialog({
      title: `Confirm: ${preview.action} on ${preview.endpoint}`,
      body: previewBody(preview),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Confirm' })]
    });
    if (!answer.button.accept) {
      return null;
    }
    const key = newKey();
    try {
      const done = await api.perform(proposal.proposal, key);
      Notification.success(done.message, { autoClose: 6000 });
      return { ok: true, message: done.message };
    } catch (error) {
      const outcome = refused(error);
      Notification.error(outcome.message, { autoClose: 10000 });
      return outcome;
    }
  } finally {
    busy(false);
  }
}

export function refused(error: unknown): Outcome {
  if (error instanceof WorkbenchError && error.status === 0) {
    return {
      ok: false,
      message: `${error.message}. Whether it ran, the sidebar shows: it follows the control plane.`
    };
  }
  const message = error instanceof WorkbenchError ? error.message : String(error);
  return { ok: false, message: `Refused, nothing changed: ${message}` };
}
