"""The demo's A/B experiment: does a better churn model keep more customers?

Simulated customers visit through the router, each with their customer id as the routing key, so each
sees one version for the whole experiment. What happens next depends on what the model served them
said, the way a retention team uses a churn score: a customer scored above ``OFFER_THRESHOLD`` is
offered a discount, and an offer keeps a customer who was about to leave with probability
``OFFER_WORKS``. Whether a customer leaves is the generated data's own ground truth. So the business
outcome (``retained``) is not a number made up per version: a model that finds more of the customers
who are leaving keeps more of them, and the experiment has to discover which one that is.

A guardrail watches the cost: the share of customers given an offer (``offered``, lower is better) may
not rise by more than ``OFFER_MARGIN``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from workbench.client import Client
from workbench.demo.dataset import FEATURES, TARGET, generate_churn
from workbench.protocol import REQUEST_ID_HEADER, ROUTING_KEY_HEADER, VERSION_HEADER

OFFER_THRESHOLD = 0.5
OFFER_WORKS = 0.8
OFFER_MARGIN = 0.25
DEMO_EXPERIMENT = "retention-offer"
DEMO_EXPERIMENT_ENDPOINT = "churn-ab"


def experiment_spec(
    name: str, endpoint: str, model: str, control: int, treatment: int, *, min_units: int = 300
) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": endpoint,
        "variants": [
            {"name": "control", "model": model, "version": control, "weight": 50},
            {"name": "treatment", "model": model, "version": treatment, "weight": 50},
        ],
        "unit": "key",
        "primary": {"name": "retained", "kind": "binary", "better": "higher"},
        "guardrails": [
            {"name": "offered", "kind": "binary", "better": "lower", "margin": OFFER_MARGIN},
        ],
        "min_units": min_units,
    }


@dataclass
class Visit:
    customer: str
    request_id: str
    version: int
    score: float


@dataclass
class Customers:
    """One visit per customer (some come back: the version must be the same), and the outcomes that follow.

    ``first`` numbers the customers (``customer-{first + i}``), so waves of customers never share an id.
    """

    router_url: str
    endpoint: str
    rows: pd.DataFrame
    seed: int = 17
    first: int = 0
    visits: dict[str, Visit] = field(default_factory=dict)
    switched: int = 0  # customers whose second visit saw another version (must stay 0)

    def visit(self, *, revisit_every: int = 10, workers: int = 1) -> None:
        """Every customer visits once (every ``revisit_every``-th twice), from ``workers`` threads."""
        split = self.rows[list(FEATURES)].to_dict(orient="split")
        jobs = list(enumerate(split["data"]))
        found: list[dict[str, Visit]] = [{} for _ in range(workers)]
        switched = [0] * workers

        def run(worker: int) -> None:
            url = f"{self.router_url}/endpoints/{self.endpoint}/invocations"
            with httpx.Client(timeout=30) as http:
                for index, row in jobs[worker::workers]:
                    customer = f"customer-{self.first + index}"
                    body = orjson.dumps({"dataframe_split": {"columns": split["columns"], "data": [row]}})
                    headers = {"content-type": "application/json", ROUTING_KEY_HEADER: customer}
                    first = _send(http, url, body, headers, customer)
                    found[worker][customer] = first
                    if index % revisit_every == 0:
                        switched[worker] += _send(http, url, body, headers, customer).version != first.version

        threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        by_index = {visit.customer: visit for part in found for visit in part.values()}
        for index in range(len(jobs)):
            customer = f"customer-{self.first + index}"
            if customer in by_index:
                self.visits[customer] = by_index[customer]
        self.switched += sum(switched)
        if len(self.visits) < len(jobs):
            raise RuntimeError(f"{len(jobs) - len(self.visits)} customers got no answer")

    def outcomes(self) -> list[dict[str, Any]]:
        """What each customer did after their visit: offered or not, stayed or left. Half the outcomes
        name the customer, half the request that exposed them, as two kinds of event pipeline would."""
        rng = np.random.default_rng(self.seed)
        leaving = self.rows[TARGET].to_numpy(dtype=bool)
        found: list[dict[str, Any]] = []
        for index, visit in enumerate(self.visits.values()):
            offered = visit.score > OFFER_THRESHOLD
            retained = not leaving[index] or (offered and rng.random() < OFFER_WORKS)
            reference = {"unit": visit.customer} if index % 2 else {"request_id": visit.request_id}
            found.append({**reference, "metric": "retained", "value": float(retained)})
            found.append({"unit": visit.customer, "metric": "offered", "value": float(offered)})
        return found

    def shares(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for visit in self.visits.values():
            counts[visit.version] = counts.get(visit.version, 0) + 1
        return counts


def _send(http: httpx.Client, url: str, body: bytes, headers: dict[str, str], customer: str) -> Visit:
    response = http.post(url, content=body, headers=headers)
    response.raise_for_status()
    score = float(np.ravel(orjson.loads(response.content)["predictions"])[0])
    return Visit(customer, response.headers[REQUEST_ID_HEADER], int(response.headers[VERSION_HEADER]), score)


@dataclass
class Waves:
    """What :func:`run_in_waves` did: customers sent, outcomes joined, the experiment at the end."""

    customers: int = 0
    switched: int = 0
    joined: int = 0
    waves: int = 0
    record: dict[str, Any] = field(default_factory=dict)


def run_in_waves(
    client: Client,
    name: str,
    router_url: str,
    endpoint: str,
    *,
    wave: int = 2000,
    most: int = 40_000,
    seed: int = 1007,
    workers: int = 3,
    on_wave: Callable[[Waves], None] = lambda _w: None,
    look_timeout_s: float = 60.0,
) -> Waves:
    """Send waves of new customers and their outcomes until the experiment stops (or ``most`` is reached).

    A sequential experiment may be looked at after every wave without inflating its error rates, so it
    runs exactly as long as the evidence needs: a large difference stops it after a wave or two, a small
    one takes many."""
    done = Waves()
    while done.customers < most:
        done.record = client.experiment(name)["experiment"]
        if done.record["state"] != "running":
            break
        size = min(wave, most - done.customers)
        customers = Customers(
            router_url,
            endpoint,
            generate_churn(size, seed=seed + done.waves),
            seed=seed + done.waves,
            first=done.customers,
        )
        customers.visit(workers=workers)
        done.customers += size
        done.switched += customers.switched
        done.waves += 1
        wait_for_assignment(client, name, done.customers)
        sent_at = time.time()
        outcomes = customers.outcomes()
        for start in range(0, len(outcomes), 10_000):  # the API's batch limit
            done.joined += client.outcomes(name, outcomes[start : start + 10_000])["joined"]
        done.record = after_a_look(client, name, sent_at, look_timeout_s)
        on_wave(done)
    return done


def after_a_look(client: Client, name: str, since: float, timeout: float) -> dict[str, Any]:
    """The experiment once the engine has looked at it after ``since`` (or stopped it)."""
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = client.experiment(name)["experiment"]
        if record["state"] != "running" or client.experiment_looks(name, limit=1, after=since):
            if record["state"] == "running":  # a look that stops it is followed by the stop itself
                time.sleep(0.5)
                record = client.experiment(name)["experiment"]
            return record
        if time.monotonic() >= deadline:
            return record
        time.sleep(0.3)


def wait_for_assignment(client: Client, name: str, units: int, timeout: float = 60.0) -> dict[str, int]:
    """Until the prediction log's records of every visit have assigned their customer."""
    deadline = time.monotonic() + timeout
    assigned: dict[str, int] = {}
    while time.monotonic() < deadline:
        assigned = client.experiment(name)["assigned"]
        if sum(assigned.values()) >= units:
            return assigned
        time.sleep(0.3)
    return assigned
