"""Airflow's own connection files as a source (issue 16, item 2): the installed executable
reads the file named by CREDPROC_AIRFLOW_CONNECTIONS_FILE in every shape Airflow's
LocalFilesystemBackend reads and `airflow connections export` writes (JSON, YAML, .env with
URIs or JSON), last in the lookup order, in `list` and `show`, with one-line errors that name
the file and never a secret, and a cache hit that parses nothing (no yaml, no json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, ROLE_ARN, SECRET_KEY, conn_uri, extra_uri, ok, one_error, signing_key, sts_at, \
    sts_toml, write_toml
from test_cache_end_to_end import FORBIDDEN_ON_HIT, IMPORT_MAIN, imported_modules

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.integration

VARIABLE = "CREDPROC_AIRFLOW_CONNECTIONS_FILE"


def role(name: str) -> str:
    return ROLE_ARN.rsplit("/", 1)[0] + "/" + name


def fields(sts, role_arn: str = ROLE_ARN) -> dict:
    """A connection as Airflow's Connection.to_dict-like export holds it: every field, the
    extra as JSON text (with the STS endpoint where Airflow reads it)."""
    return {"conn_type": "aws", "description": None, "login": ACCESS_KEY, "password": SECRET_KEY, "host": None,
            "port": None, "schema": None, "extra": json.dumps({"role_arn": role_arn, **sts_at(sts.url)})}


def export(fmt: str, connections: dict[str, dict]) -> str:
    """What `airflow connections export --file-format F [--serialization-format S]` writes."""
    if fmt == "json":
        return json.dumps(connections, indent=2)
    if fmt == "yaml":
        return yaml.dump(connections)
    lines = []
    for conn_id, conn in connections.items():
        if fmt == "env-json":
            lines.append(f"{conn_id}={json.dumps(conn)}")
        else:  # Connection.get_uri(): a nested extra goes into __extra__
            lines.append(f"{conn_id}={extra_uri(json.loads(conn['extra']))}")
    return "".join(line + "\n" for line in lines)


def point(env: dict, tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    env[VARIABLE] = str(path)
    return path


def assume_role_calls(sts) -> list[dict]:
    return [r for r in sts.requests if r["action"] == "AssumeRole"]


SUFFIX = {"json": "connections.json", "yaml": "connections.yaml", "env-uri": "connections.env",
          "env-json": "connections.env"}


# -- a team's export, unchanged ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "yaml", "env-uri", "env-json"])
def test_an_airflow_export_works_unchanged(sts, env, run, tmp_path, fmt):
    point(env, tmp_path, SUFFIX[fmt], export(fmt, {"aws_default": fields(sts, role("default")),
                                                   "prod": fields(sts, role("prod"))}))
    first = ok(run(["--conn", "prod"], env), temporary=True)
    [call] = assume_role_calls(sts)
    assert call["params"]["RoleArn"] == role("prod") and signing_key(call) == ACCESS_KEY
    assert ok(run(["--conn", "prod"], env)) == first  # the cache: no second call
    ok(run([], env), temporary=True)  # aws_default, from the file too
    assert [c["params"]["RoleArn"] for c in assume_role_calls(sts)] == [role("prod"), role("default")]


def test_the_shapes_airflows_backend_reads(sts, env, run, tmp_path):
    """A URI string, an object with extra_dejson, a uri key, a list of one; and in YAML an
    extra written as a mapping."""
    extra = {"role_arn": role("a"), **sts_at(sts.url)}
    point(env, tmp_path, "hand.json", json.dumps({
        "a": conn_uri(sts.url, role_arn=role("a")),
        "b": {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
              "extra_dejson": {**extra, "role_arn": role("b")}},
        "c": {"conn_id": "c", "uri": conn_uri(sts.url, role_arn=role("c"))},
        "d": [{"login": ACCESS_KEY, "password": SECRET_KEY, "extra": {**extra, "role_arn": role("d")}}],
    }))
    for conn_id in "abcd":
        ok(run(["--conn", conn_id], env), temporary=True)
    point(env, tmp_path, "hand.yml", yaml.dump({"e": {"login": ACCESS_KEY, "password": SECRET_KEY,
                                                      "extra": {**extra, "role_arn": role("e")}}}))
    ok(run(["--conn", "e"], env), temporary=True)
    assert [c["params"]["RoleArn"] for c in assume_role_calls(sts)] == [role(x) for x in "abcde"]


def test_the_file_comes_last_in_the_lookup_order(sts, env, run, tmp_path):
    point(env, tmp_path, "c.json", export("json", {"prec": fields(sts, role("from-airflow-file"))}))
    write_toml(env, f'[connections.prec]\nlogin = "{ACCESS_KEY}"\npassword = "{SECRET_KEY}"\n'
                    f'role_arn = "{role("from-toml")}"\n{sts_toml(sts.url)}\n')
    env["AIRFLOW_CONN_PREC"] = conn_uri(sts.url, role_arn=role("from-airflow-variable"))
    env["CREDPROC_CONN_PREC"] = conn_uri(sts.url, role_arn=role("from-credproc-variable"))
    order = []
    for remove in ("CREDPROC_CONN_PREC", "AIRFLOW_CONN_PREC", "toml", None):
        ok(run(["--conn", "prec"], env), temporary=True)
        order.append(assume_role_calls(sts)[-1]["params"]["RoleArn"])
        if remove == "toml":
            Path(env["CREDPROC_CONFIG"]).unlink()
        elif remove:
            del env[remove]
    assert order == [role("from-credproc-variable"), role("from-airflow-variable"), role("from-toml"),
                     role("from-airflow-file")]


def test_list_and_show_name_the_file_and_its_key(sts, env, run, tmp_path):
    path = point(env, tmp_path, "c.env", export("env-uri", {"etl": fields(sts), "shadowed": fields(sts)}))
    env["CREDPROC_CONN_SHADOWED"] = conn_uri(sts.url)
    listed = ok(run(["list"], env), text=True)
    rows = {line.split()[0]: line for line in listed.splitlines()[1:] if not line.startswith("note:")}
    assert set(rows) == {"aws_default", "etl", "shadowed"}
    assert f"{path} [etl]" in rows["etl"] and "assume_role" in rows["etl"]
    assert f"note: shadowed: {path} [shadowed] is not used: CREDPROC_CONN_SHADOWED comes first" in listed
    as_json = {row["id"]: row for row in json.loads(ok(run(["list", "--json"], env), text=True))}
    assert as_json["etl"]["defined_in"] == {"kind": "airflow-file", "where": str(path), "shown": f"{path} [etl]"}
    shown = ok(run(["show", "etl"], env), text=True)
    assert f"defined in          {path} [etl]\n" in shown
    assert SECRET_KEY not in listed + shown and ACCESS_KEY not in shown


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, needles", [
    ("c.json", '{\n  "prod": {"password": "' + SECRET_KEY + '",\n', ["c.json", "invalid JSON", "line 3"]),
    ("c.yaml", f"prod:\n  password: {SECRET_KEY}\n  login: [\n", ["c.yaml", "invalid YAML", "line 4"]),
    ("c.env", f"prod {SECRET_KEY}\n", ["c.env line 1: no '='"]),
    ("c.conf", "{}", ["the name must end in .json, .yaml, .yml or .env"]),
    ("c.json", json.dumps({"prod": {"login": ACCESS_KEY, "password": SECRET_KEY, "pasword": "x"}}),
     ["c.json [prod]", "unknown connection field(s) ['pasword']"]),
], ids=["json", "yaml", "env", "extension", "entry"])
def test_a_broken_file_is_one_line_without_its_secrets(env, run, tmp_path, name, text, needles):
    point(env, tmp_path, name, text)
    line = one_error(run(["--conn", "prod"], env), 2, *needles)
    assert "Airflow connections file" in line


def test_a_missing_or_endless_file(env, run, tmp_path):
    env[VARIABLE] = str(tmp_path / "gone.json")
    one_error(run(["--conn", "prod"], env), 2, "gone.json ($CREDPROC_AIRFLOW_CONNECTIONS_FILE): no such file")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    env[VARIABLE] = str(tmp_path / "zero.json")
    result = run(["--conn", "prod"], env, timeout=20)
    one_error(result, 2, "zero.json", "larger than 1 MiB: not an Airflow connections file")
    listed = run(["list"], env, timeout=20)
    assert listed.returncode == 0 and "larger than 1 MiB" in listed.stderr  # a warning: the rest is listed


def test_without_pyyaml_a_yaml_file_says_to_install_the_extra(sts, env, run, tmp_path):
    """PyYAML is optional (credproc[yaml]): without it a YAML file is one line saying so,
    and JSON and .env files work as before."""
    blocker = tmp_path / "no-pyyaml" / "yaml"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyYAML is not installed here')\n")
    env["PYTHONPATH"] = str(blocker.parent)
    point(env, tmp_path, "c.yaml", export("yaml", {"prod": fields(sts)}))
    one_error(run(["--conn", "prod"], env), 2, "c.yaml is YAML: install credproc[yaml] (PyYAML) to read it")
    point(env, tmp_path, "c.json", export("json", {"prod": fields(sts)}))
    ok(run(["--conn", "prod"], env), temporary=True)


# -- the cache -------------------------------------------------------------------------------------


def test_a_hit_from_a_yaml_file_parses_nothing(sts, env, run, tmp_path):
    """The hit reads the file's text for the cache key and copies the entry out: no yaml,
    no json, no re. The miss of the same command does import yaml, so the check can fail."""
    point(env, tmp_path, "c.yaml", export("yaml", {"prod": fields(sts)}))
    warm = run(["--conn", "prod"], env)
    ok(warm, temporary=True)
    hit = subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORT_MAIN], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert hit.returncode == 0 and hit.stdout == warm.stdout, hit.stderr[-2000:]
    modules = imported_modules(hit.stderr)
    assert "credproc.sources" in modules, "could not parse -X importtime's output"
    heavy = sorted(m for m in modules if m.split(".")[0] in {*FORBIDDEN_ON_HIT, "yaml", "_yaml"})
    assert heavy == [] and "credproc.airflow_files" not in modules, heavy
    assert len(assume_role_calls(sts)) == 1

    for entry in Path(env["CREDPROC_CACHE_DIR"]).glob("*.entry"):
        entry.unlink()
    miss = subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORT_MAIN], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert miss.returncode == 0, miss.stderr[-2000:]
    assert "yaml" in imported_modules(miss.stderr)


def test_an_edit_of_the_file_is_a_new_entry(sts, env, run, tmp_path):
    """The file's text keys the bucket, as the TOML file's does: editing any connection in
    it fetches anew; the same text (rewritten) is a hit."""
    connections = {"prod": fields(sts), "other": fields(sts, role("other"))}
    path = point(env, tmp_path, "c.json", export("json", connections))
    first = ok(run(["--conn", "prod"], env), temporary=True)
    path.write_text(export("json", connections))
    os.utime(path)
    assert ok(run(["--conn", "prod"], env)) == first
    connections["other"] = fields(sts, role("edited"))
    path.write_text(export("json", connections))
    assert ok(run(["--conn", "prod"], env), temporary=True) != first
    assert len(assume_role_calls(sts)) == 2
