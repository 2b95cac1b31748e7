/**
 * Calls to the workbench's server extension (`{base_url}/workbench/...`), under Jupyter's own
 * authentication. The control plane's token never reaches the browser: the server extension holds it.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface Route {
  model: string;
  version: number;
  weight: number;
}

export interface RolloutInfo {
  id: string;
  strategy: string;
  phase: string;
  step: number;
  steps: number;
  weights: number[];
  candidate: string;
  stable: string;
}

export interface LiveNumbers {
  requests_total: number;
  errors_total: number;
  requests_per_s: number | null;
  p95_ms: number | null;
  error_rate: number | null;
}

/** The primary metric's comparison of one variant with the control, at the latest look. */
export interface ExperimentComparison {
  variant: string;
  n_control: number;
  n_variant: number;
  control_mean: number | null;
  variant_mean: number | null;
  estimate: number | null;
  /** The always-valid interval's ends (null: not bounded yet). */
  lower: number | null;
  upper: number | null;
  adjusted_p: number | null;
  direction: 'better' | 'worse' | null;
}

/** `[ts, units, estimate, lower, upper]` of one look (thinned to a sparkline's worth). */
export type LookPoint = [number, number | null, number | null, number | null, number | null];

/** The A/B experiment an endpoint's card shows: its running or paused one, or its last concluded one. */
export interface ExperimentInfo {
  name: string;
  state: 'running' | 'paused' | 'concluded';
  revision: number;
  unit: 'key' | 'request';
  metric: { name: string; kind: 'binary' | 'continuous'; better: 'higher' | 'lower' };
  level: number | null;
  control: string;
  variants: { name: string; model: string; version: number; weight: number; units: number | null }[];
  verdict: 'continue' | 'winner' | 'futility' | 'guardrail_breach' | 'srm' | null;
  reason: string | null;
  winner: string | null;
  srm: boolean;
  decided_at: number | null;
  primary: ExperimentComparison[];
  looks: number;
  last_look: number | null;
  series: Record<string, LookPoint[]>;
}

export interface EndpointState extends LiveNumbers {
  name: string;
  revision: number;
  routes: Route[];
  replicas_ready: number;
  replicas: number;
  devices: string[];
  restarts: number;
  rollout: RolloutInfo | null;
  rollout_label: string | null;
  firing: string[];
  shadows: string[];
  history: { revision: number; cause: string; at: number; actor: string }[];
  experiment: ExperimentInfo | null;
}

export interface RunState {
  id: string;
  runbook: string;
  status: string;
  trigger: string;
  endpoint: string | null;
  summary: Record<string, unknown> | null;
  created_at: number;
}

export interface SidebarState {
  at: number;
  error: string | null;
  endpoints: EndpointState[];
  models: Record<string, { label: string; version: number }[]>;
  runs: RunState[];
  user?: string;
}

export interface TrafficDelta {
  at: number;
  endpoints: Record<string, LiveNumbers>;
}

/** After a look: the endpoints whose experiment changed, with their new entry (null: none any more). */
export interface ExperimentsDelta {
  at: number;
  endpoints: Record<string, ExperimentInfo | null>;
}

export interface Preview {
  action: string;
  endpoint: string;
  routes_before: string;
  routes_after: string;
  detail: string;
  changes_traffic: boolean;
  expected_revision: number | null;
}

export interface Proposal {
  proposal: string;
  preview: Preview;
  expires_in_s: number;
}

export type Ask =
  | { kind: 'deploy'; endpoint: string; model: string; version: number }
  | {
      kind: 'rollout';
      endpoint: string;
      model: string;
      version: number;
      strategy: string;
      steps: string;
    }
  | { kind: 'rollout_action'; endpoint: string; action: string }
  | { kind: 'rollback'; endpoint: string; to_revision?: number; force?: boolean }
  | {
      kind: 'experiment_action';
      endpoint: string;
      action: 'pause' | 'resume' | 'conclude' | 'promote';
      experiment?: string;
    };

export interface RunbookParameter {
  name: string;
  type: string | null;
  default: string;
  help: string;
}

export interface Runbook {
  name: string;
  title: string;
  description: string;
  parameters: RunbookParameter[];
}

export interface RunRecord {
  id: string;
  runbook: string;
  status: string;
  summary: Record<string, unknown> | null;
  error: string | null;
  actor: string;
}

/** What the server extension refused, with its message (the control plane's own, when it refused). */
export class WorkbenchError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

const settings = (): ServerConnection.ISettings => ServerConnection.makeSettings();

export function url(...parts: string[]): string {
  return URLExt.join(settings().baseUrl, 'workbench', ...parts);
}

/** One key per confirmation: a double click or a retry sends the same key, so the action runs once. */
export function newKey(): string {
  return crypto.randomUUID().replace(/-/g, '');
}

export async function request<T>(
  path: string[],
  init: RequestInit = {},
  key?: string
): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.body !== undefined) {
    headers.set('Content-Type', 'application/json');
  }
  if (key) {
    headers.set('Idempotency-Key', key);
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url(...path), { ...init, headers }, settings());
  } catch (error) {
    throw new WorkbenchError(`Jupyter did not answer: ${String(error)}`, 0);
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body as { error?: { message?: string } } | null)?.error;
    const message =
      response.status === 403
        ? 'your Jupyter session has expired: reload the page and sign in again'
        : error?.message ?? `${response.status} ${response.statusText}`;
    throw new WorkbenchError(message, response.status);
  }
  return body as T;
}

export const api = {
  state: () => request<SidebarState>(['state']),
  preview: (ask: Ask) =>
    request<Proposal>(['preview'], { method: 'POST', body: JSON.stringify(ask) }),
  perform: (proposal: string, key: string) =>
    request<{ message: string; endpoint: string }>(
      ['perform'],
      { method: 'POST', body: JSON.stringify({ proposal }) },
      key
    ),
  models: () => request<{ name: string; aliases?: Record<string, number> }[]>(['models']),
  model: (name: string) => request<Record<string, unknown>>(['models', name]),
  runbooks: () => request<Runbook[]>(['runbooks']),
  runRunbook: (name: string, parameters: Record<string, unknown>, key: string) =>
    request<RunRecord>(
      ['runbooks', name, 'runs'],
      { method: 'POST', body: JSON.stringify({ parameters }) },
      key
    ),
  run: (id: string, waitS = 0) =>
    request<RunRecord>(['runs', `${id}?wait_s=${waitS}`]),
  openRun: (id: string) =>
    request<{ path: string; status: string }>(['runs', id, 'open'], {
      method: 'POST',
      body: '{}'
    })
};

export type StreamEvent =
  | { kind: 'state'; data: SidebarState }
  | { kind: 'traffic'; data: TrafficDelta }
  | { kind: 'experiments'; data: ExperimentsDelta };

const EVENTS = ['state', 'traffic', 'experiments'];

/**
 * Read the server's event stream (server-sent events over a fetch, so Jupyter's usual credentials go
 * with it) until `signal` aborts it or the connection ends; each event is handed to `onEvent`.
 */
export async function stream(
  onEvent: (event: StreamEvent) => void,
  signal: AbortSignal
): Promise<void> {
  const response = await ServerConnection.makeRequest(
    url('events'),
    { signal, headers: { Accept: 'text/event-stream' } },
    settings()
  );
  if (!response.ok || !response.body) {
    throw new WorkbenchError(
      response.status === 403
        ? 'your Jupyter session has expired: reload the page and sign in again'
        : `the live stream was refused (${response.status})`,
      response.status
    );
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      let kind = '';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) {
          kind = line.slice(7);
        } else if (line.startsWith('data: ')) {
          data += line.slice(6);
        }
      }
      if (EVENTS.includes(kind) && data) {
        onEvent({ kind, data: JSON.parse(data) } as StreamEvent);
      }
    }
  }
}
