"""The Airflow side of the differential test (tests/test_airflow_parity.py): connection
definitions built into credentials by the real Amazon provider.

Run with the Python of tests/airflow/.venv (``make airflow-venv``), never credproc's: it
imports Airflow. One process serves a whole corpus, since importing Airflow takes a second
or two. It speaks JSON lines:

* it prints ``{"ready": {"airflow": VERSION, "provider": VERSION}}`` once Airflow is imported;
* then, for each line read on stdin, ``{"conn_id": ID, "definition": TEXT or null,
  "env": {NAME: VALUE}}``, it puts ``TEXT`` in ``AIRFLOW_CONN_<ID>`` (none for null: an
  undefined connection) and ``env`` in the environment (the previous line's are removed),
  asks ``AwsBaseHook(aws_conn_id=ID).get_session()`` for its credentials, frozen as
  ``AwsBaseHook.get_credentials`` freezes them, and prints one line: ``{"ok": true,
  "access_key_id": ...}``, or ``{"ok": false, "error": CLASS, "message": ...}``; with the
  warnings Airflow gave (``"warnings"``), and ``"found"``: whether Airflow found a definition
  it could read (false: it went on with boto3's chain alone, as for an undefined connection).

The caller waits for each answer before it sends the next line, so that everything the STS
saw in between belongs to that definition. Whatever Airflow prints (its logs) goes to
stderr: stdout carries only these lines.
"""

from __future__ import annotations

import json
import os
import sys
import warnings


def _answer_channel():
    """Our stdout, private: fd 1 becomes stderr, so Airflow's own printing cannot garble it."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _credentials(conn_id: str) -> dict:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=conn_id, client_type="sts")
    # False when Airflow found no usable definition and went on with boto3's chain alone.
    found = bool(hook.conn_config)
    credentials = hook.get_session().get_credentials()
    if credentials is None:  # boto3's chain found nothing: get_credentials would fail on None
        return {"ok": False, "found": found, "error": "NoCredentials", "message": "the session has no credentials"}
    frozen = credentials.get_frozen_credentials()
    return {"ok": True, "found": found, "access_key_id": frozen.access_key}


def _run(request: dict, base_env: dict[str, str]) -> dict:
    os.environ.clear()
    os.environ.update(base_env)
    os.environ.update(request.get("env") or {})
    definition = request.get("definition")
    if definition is not None:
        os.environ["AIRFLOW_CONN_" + request["conn_id"].upper()] = definition
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            answer = _credentials(request["conn_id"])
        except Exception as e:  # any failure is an outcome to compare, not a harness error
            answer = {"ok": False, "found": None, "error": type(e).__name__, "message": str(e)[:500]}
    answer["warnings"] = sorted({str(w.message)[:300] for w in caught})
    return answer


def main() -> None:
    channel = _answer_channel()
    from importlib.metadata import version

    import airflow.providers.amazon.aws.hooks.base_aws  # noqa: F401  (the slow import, once)

    base_env = dict(os.environ)
    ready = {"airflow": version("apache-airflow"), "provider": version("apache-airflow-providers-amazon")}
    channel.write(json.dumps({"ready": ready}) + "\n")
    for line in sys.stdin:
        if line.strip():
            channel.write(json.dumps(_run(json.loads(line), base_env)) + "\n")


if __name__ == "__main__":
    main()
