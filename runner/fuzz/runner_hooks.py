"""Schemathesis hooks for the runner (loaded by scripts/runner-fuzz.sh).

`no_undocumented_server_error` replaces schemathesis' `not_a_server_error`: a 5xx is a
finding unless it is one the API documents as a failure of Docker or of the runner's
capacity, and even then it must have the documented JSON error body.
"""

import json

import schemathesis

# 5xx codes the API documents: Docker failed (500), a pull failed (500), the runner is full or
# shutting down (503). Anything else with a 5xx status is a bug.
DOCUMENTED_5XX = {
    500: {"docker_error", "image_pull_failed"},
    503: {"overloaded", "shutting_down"},
}


@schemathesis.check
def no_undocumented_server_error(ctx, response, case):
    status = response.status_code
    if status < 500:
        return None
    try:
        body = json.loads(response.content)
        code = body["error"]["code"]
    except Exception:  # noqa: BLE001 - any unreadable body is a finding
        raise AssertionError(f"{status} without a JSON error body: {response.content[:500]!r}")
    if code not in DOCUMENTED_5XX.get(status, set()):
        raise AssertionError(f"undocumented server error {status} {code}: {body}")
    return None


# Half of the generated task requests run the local test image, so that fuzzing reaches the
# container lifecycle (commands that do not exist, odd environments, limits, stdin...) instead
# of stopping at "image not found".
TEST_IMAGE = "cairn-runner-test:busybox"
_calls = {"n": 0}


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict) and "docker_image" in body:
        _calls["n"] += 1
        if _calls["n"] % 2 == 0:
            body["docker_image"] = TEST_IMAGE
            body.pop("tag", None)
            body.pop("creds", None)
    return body


# What the runner answered, by status and error code: printed at exit to show how deep the
# generated requests got.
_seen = {}


@schemathesis.check
def tally(ctx, response, case):
    key = str(response.status_code)
    try:
        error = json.loads(response.content)["error"]
        key += " " + error["code"] + (" " + error["field"] if "field" in error else "")
    except Exception:  # noqa: BLE001 - not an error body
        pass
    _seen[key] = _seen.get(key, 0) + 1
    return None


def _report():
    if _seen:
        lines = sorted(_seen.items(), key=lambda kv: -kv[1])
        print("runner answers by status and error: " + ", ".join(f"{k}: {v}" for k, v in lines))


import atexit  # noqa: E402

atexit.register(_report)
