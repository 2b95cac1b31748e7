/**
 * The sidebar's live copy of the workbench state: one stream from the server extension while the page
 * is visible, none while it is hidden (a background tab costs the control plane nothing), reconnecting
 * with a growing pause when the stream breaks.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { SidebarState, StreamEvent, WorkbenchError, api, stream } from './api';

/**
 * What changed: the whole state, only the live numbers, some endpoints' experiment (a new look), or
 * whether it can be shown at all.
 */
export type Change = 'state' | 'traffic' | 'experiments' | 'problem';

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;

export class LiveState {
  private _state: SidebarState | null = null;
  private _problem: string | null = null;
  private _changed = new Signal<this, Change>(this);
  private _controller: AbortController | null = null;
  private _retryMs = RETRY_FIRST_MS;
  private _timer: number | null = null;
  private _disposed = false;

  constructor() {
    document.addEventListener('visibilitychange', this._onVisibility);
    if (!document.hidden) {
      this._connect();
    }
  }

  get state(): SidebarState | null {
    return this._state;
  }

  /** Why the sidebar cannot show the current state (Jupyter or the control plane), or null. */
  get problem(): string | null {
    return this._problem ?? this._state?.error ?? null;
  }

  get changed(): ISignal<this, Change> {
    return this._changed;
  }

  get connected(): boolean {
    return this._controller !== null;
  }

  /** Read the whole state now (a refresh asked for by the person), and reconnect if disconnected. */
  async reload(): Promise<void> {
    try {
      this._apply({ kind: 'state', data: await api.state() });
    } catch (error) {
      this._problem = error instanceof WorkbenchError ? error.message : String(error);
      this._changed.emit('problem');
    }
    if (!document.hidden) {
      this._connect();
    }
  }

  dispose(): void {
    this._disposed = true;
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._disconnect();
  }

  private _onVisibility = (): void => {
    if (document.hidden) {
      this._disconnect();
    } else {
      this._connect();
    }
  };

  private _connect(): void {
    if (this._controller || this._disposed) {
      return;
    }
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
    const controller = new AbortController();
    this._controller = controller;
    stream(event => this._apply(event), controller.signal)
      .then(() => this._lost(controller, 'the live stream ended'))
      .catch(error => {
        if (!controller.signal.aborted) {
          const message =
            error instanceof WorkbenchError ? error.message : `the live stream broke: ${String(error)}`;
          this._lost(controller, message);
        }
      });
  }

  private _disconnect(): void {
    const controller = this._controller;
    this._controller = null;
    controller?.abort();
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _lost(controller: AbortController, message: string): void {
    if (this._controller !== controller) {
      return;
    }
    this._controller = null;
    this._problem = message;
    this._changed.emit('problem');
    if (!document.hidden && !this._disposed) {
      this._timer = window.setTimeout(() => {
        this._timer = null;
        this._connect();
      }, this._retryMs);
      this._retryMs = Math.min(this._retryMs * 2, RETRY_MAX_MS);
    }
  }

  private _apply(event: StreamEvent): void {
    this._problem = null;
    this._retryMs = RETRY_FIRST_MS;
    if (event.kind === 'state') {
      this._state = event.data;
    } else if (event.kind === 'experiments') {
      for (const endpoint of this._state?.endpoints ?? []) {
        if (endpoint.name in event.data.endpoints) {
          endpoint.experiment = event.data.endpoints[endpoint.name];
        }
      }
    } else if (this._state) {
      for (const endpoint of this._state.endpoints) {
        const numbers = event.data.endpoints[endpoint.name];
        if (numbers) {
          Object.assign(endpoint, numbers);
        }
      }
    }
    this._changed.emit(event.kind);
  }
}
