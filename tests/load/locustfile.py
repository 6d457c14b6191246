"""Mixed traffic against a served platform: the Locust side of the load test (issue 20, item 5).

Run only as its own process (``locust -f tests/load/locustfile.py --headless ...``, started by
tests/load/harness.py): importing locust patches the standard library with gevent.

The run's plan is a JSON file named by the ``LOAD_PLAN`` environment variable (written by the harness,
mode 0600: passwords and API tokens never reach the command line): the people (one per workspace, with
their password, API token, workspace and one ready compute instance of theirs), the profiles to launch
and the file to write the outcome to.

Two kinds of simulated user, each taking the next person of the plan in turn (API users from the first,
portal users from the last):

* ``PortalUser`` signs in through the login form (session, CSRF) and reads the developer hub: home,
  the workspace, its instances, the launch form with the catalog, the service catalog, *My deployments*,
  the ready instance's page and its live status fragment, and downloads a kubeconfig of it (the page's
  form: a POST with the session's CSRF token).
* ``ApiUser`` works with an API token: the workspace's catalogs, lists and summary, launches and deletes
  (a launch, then its delete; in the tight workspace two launches alive, the second refused over quota:
  the tight workspace's user starts with those two launches, so the quota's 409 is met whatever the
  pace of the run), services onto the ready instance and their
  deletes (a launch, then its delete), kubeconfig downloads, and ``/api/v1/me/`` (the trivial endpoint
  every figure is compared with).

Every answer is checked against ``kinds.EXPECTED`` (``catch_response``: an unexpected status is a Locust
failure whose message has the status and the start of the body). When the run ends, the response times,
status counts and unexpected answers per kind are written to the plan's ``result_file`` for the harness.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import Counter, defaultdict
from urllib.parse import urlencode

from locust import FastHttpUser, between, events, task

from tests.load.kinds import EXPECTED, QUOTA_REFUSAL

PLAN = json.loads(open(os.environ["LOAD_PLAN"]).read())  # noqa: SIM115 (read once at import)
MAX_LIVE = 1  # own launches alive before the next turn deletes one (2 in the tight workspace)
MAX_SERVICES = 1  # own services alive before the next turn deletes one
WAIT = tuple(PLAN.get("wait_seconds", (0.5, 1.5)))
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TITLE = re.compile(r"<title>(.*?)</title>", re.S)

# API users take the people from the first (the tight workspace's), portal users from the last: with
# fewer users of a kind than people, every workspace still gets traffic.
_api_people = itertools.cycle(PLAN["people"])
_portal_people = itertools.cycle(PLAN["people"][::-1])
_names = itertools.count(1)  # one locust process: names unique across its users
statuses: dict[str, Counter] = defaultdict(Counter)
unexpected: dict[str, Counter] = defaultdict(Counter)
request_ids: dict[str, list[str]] = defaultdict(list)  # a few unexpected answers' X-Request-ID per kind
times: dict[str, list[float]] = defaultdict(list)  # response times (ms) per kind
span = [float("inf"), 0.0]  # first request's start, last answer's end (epoch seconds)


@events.request.add_listener
def _record(name, response_time, response, start_time=None, **kwargs):
    statuses[name][str(getattr(response, "status_code", 0) or 0)] += 1
    times[name].append(round(response_time, 1))
    if start_time is not None:
        span[0] = min(span[0], start_time)
        span[1] = max(span[1], start_time + response_time / 1000)


@events.quitting.add_listener
def _write_result(environment, **kwargs):
    """Everything the report needs, written once the users have stopped (Locust's own CSV files are
    written periodically and may miss the last answers)."""
    with open(PLAN["result_file"], "w") as out:
        json.dump(
            {
                "seconds": max(span[1] - span[0], 0.0),
                "statuses": {name: dict(counts) for name, counts in statuses.items()},
                "unexpected": {name: dict(counts) for name, counts in unexpected.items()},
                "request_ids": request_ids,
                "times": times,
            },
            out,
        )


def _gist(text: str) -> str:
    """An answer's body in a line: an HTML page's title, else the start of the text (JSON errors)."""
    title = TITLE.search(text) if text.lstrip().startswith("<") else None
    return " ".join((title.group(1) if title else text).split())[:160]


class _Checked:
    """Shared by both users: send a request of a named kind and hold its answer to the kind's rules."""

    def call(self, method: str, path: str, kind: str, *, json_body=None, form=None, headers=None):
        headers = dict(headers or {})
        data = None
        if form is not None:
            data = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        with self.client.request(
            method,
            path,
            name=kind,
            json=json_body,
            data=data,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            text = (response.text or "") if status else ""
            ok = status in EXPECTED[kind]
            if ok and status == 409:  # the one designed refusal: the quota, nothing else
                ok = QUOTA_REFUSAL in text
            if ok:
                response.success()
            else:
                why = f"{status} {_gist(text)}" if status else f"no answer: {response.error}"
                unexpected[kind][why] += 1
                if status and len(request_ids[kind]) < 3:
                    request_ids[kind].append((response.headers or {}).get("X-Request-ID", ""))
                response.failure(why)
            return status, text


class PortalUser(_Checked, FastHttpUser):
    """A person in the developer hub (a session signed in through the login form)."""

    wait_time = between(*WAIT)

    def on_start(self):
        self.person = next(_portal_people)
        status, text = self.call("GET", "/login/", "portal: login form")
        token = CSRF.search(text)
        self.signed_in = False
        if status == 200 and token:
            form = {
                "username": self.person["username"],
                "password": self.person["password"],
                "csrfmiddlewaretoken": token.group(1),
            }
            status, _ = self.call(
                "POST", "/login/", "portal: sign in", form=form, headers={"Referer": "/login/"}
            )
            self.signed_in = status == 302

    def page(self, path: str, kind: str):
        if self.signed_in:
            self.call("GET", path, kind)

    @task(1)
    def home(self):
        self.page("/", "portal: home")

    @task(3)
    def workspace(self):
        self.page(f"/w/{self.person['project']}/", "portal: workspace")

    @task(3)
    def instance_list(self):
        self.page(f"/w/{self.person['project']}/instances/", "portal: instance list")

    @task(2)
    def launch_form(self):
        self.page(f"/w/{self.person['project']}/instances/new/", "portal: launch form (catalog)")

    @task(2)
    def service_catalog(self):
        self.page(f"/w/{self.person['project']}/services/", "portal: service catalog")

    @task(2)
    def deployments(self):
        self.page(f"/w/{self.person['project']}/deployments/custom/", "portal: deployments")

    @task(2)
    def instance_detail(self):
        self.page(f"/instances/{self.person['ready_instance']}/", "portal: instance detail")

    @task(2)
    def instance_status(self):
        self.page(f"/instances/{self.person['ready_instance']}/status/", "portal: instance status")

    @task(1)
    def kubeconfig(self):
        """The instance page's *Download kubeconfig* button: a POST with the session's CSRF token."""
        if self.signed_in:
            token = next((c.value for c in self.client.cookiejar if c.name == "csrftoken"), "")
            self.call(
                "POST",
                f"/instances/{self.person['ready_instance']}/kubeconfig/",
                "portal: kubeconfig download",
                form={"csrfmiddlewaretoken": token},
            )


class ApiUser(_Checked, FastHttpUser):
    """A person's scripts on the REST API (a personal API token)."""

    wait_time = between(*WAIT)

    def on_start(self):
        self.person = next(_api_people)
        self.auth = {"Authorization": f"Bearer {self.person['token']}"}
        self.launched: list[int] = []
        self.services: list[int] = []
        self.refused = False
        self.launch_kind = "api: launch (tight quota)" if self.person.get("tight") else "api: launch"
        self.max_live = MAX_LIVE + 1 if self.person.get("tight") else MAX_LIVE
        self.profiles = itertools.cycle(PLAN["compute_profiles"])
        if self.person.get("tight"):
            # Meet the quota first, whatever the pace of the run: its ready instance and this launch
            # fill the workspace's two, so the next launch is refused (409).
            self.launch_or_delete()
            self.launch_or_delete()

    def api(self, method: str, path: str, kind: str, body=None):
        return self.call(method, f"/api/v1/{path}", kind, json_body=body, headers=self.auth)

    @task(1)
    def me(self):
        self.api("GET", "me/", "api: me (baseline)")

    @task(3)
    def catalog(self):
        self.api(
            "GET", f"projects/{self.person['project']}/catalog/compute-profiles/", "api: catalog compute"
        )

    @task(1)
    def service_catalog(self):
        self.api(
            "GET", f"projects/{self.person['project']}/catalog/service-profiles/", "api: catalog services"
        )

    @task(2)
    def instances(self):
        self.api("GET", f"instances/?project={self.person['project']}", "api: instance list")

    @task(1)
    def summary(self):
        self.api("GET", f"projects/{self.person['project']}/summary/", "api: workspace summary")

    @task(1)
    def service_list(self):
        self.api("GET", f"service-instances/?instance={self.person['ready_instance']}", "api: service list")

    @task(4)
    def launch_or_delete(self):
        """Launch the next profile; or delete the oldest of its own launches when it holds its most, or
        when its last launch was refused over quota (the tight workspace)."""
        if self.launched and (len(self.launched) >= self.max_live or self.refused):
            self.refused = False
            self.api("DELETE", f"instances/{self.launched.pop(0)}/", "api: delete")
            return
        body = {
            "project": self.person["project"],
            "name": f"ld{next(_names)}",
            "profile": next(self.profiles),
        }
        status, text = self.api("POST", "instances/", self.launch_kind, body)
        if status == 201:
            self.launched.append(json.loads(text)["id"])
        self.refused = status == 409

    @task(3)
    def service_launch_or_delete(self):
        """Deploy the service profile onto the person's ready instance, or delete its oldest service."""
        if len(self.services) >= MAX_SERVICES:
            self.api("DELETE", f"service-instances/{self.services.pop(0)}/", "api: service delete")
            return
        body = {
            "compute_instance": self.person["ready_instance"],
            "profile": PLAN["service_profile"],
            "name": f"sv{next(_names)}",
            "inputs": {},
        }
        status, text = self.api("POST", "service-instances/", "api: service launch", body)
        if status == 201:
            self.services.append(json.loads(text)["id"])

    @task(1)
    def kubeconfig(self):
        self.api("POST", f"instances/{self.person['ready_instance']}/kubeconfig/", "api: kubeconfig download")
