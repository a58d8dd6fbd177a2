"""The `tollway` command line, run as a user runs it: `python -m tollway ...` in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from tests.harness import Tollway

SECRET = "sk-live-do-not-print-me-0123456789"


def tollway_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "TOLLWAY_"))}
    return subprocess.run([sys.executable, "-m", "tollway", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**clean, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


def tollway_cli_many(calls: dict[str, tuple[tuple[str, ...], dict[str, str]]],
                     cwd: Path | None = None) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several independent invocations at once (each is a fresh interpreter: keep the file fast)."""
    with ThreadPoolExecutor(8) as pool:
        futures = {name: pool.submit(tollway_cli, *args, env=env, cwd=cwd) for name, (args, env) in calls.items()}
        return {name: f.result() for name, f in futures.items()}


# -- help ---------------------------------------------------------------------------------------

HELP_CALLS: dict[str, tuple[str, ...]] = {
    "top": ("--help",), "none": (), "serve": ("serve", "--help"), "config": ("config", "--help"),
    "config check": ("config", "check", "--help"), "usage": ("usage", "--help"),
    "version": ("version", "--help"), "print-version": ("version",), "--version": ("--version",),
    "-V": ("-V",), "-h": ("-h",), "serve -h": ("serve", "-h"), "config check -h": ("config", "check", "-h"),
    "usage -h": ("usage", "-h"), "port-0": ("serve", "--port", "0"), "port-65536": ("serve", "-p", "65536"),
}


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    return tollway_cli_many({name: (args, {}) for name, args in HELP_CALLS.items()})


def test_top_level_help_lists_every_command(helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = helps["top"]
    assert r.returncode == 0, r.stderr
    for command in ("serve", "usage", "version", "config"):
        assert re.search(rf"\b{command}\b", r.stdout), command
    assert "proxy" in r.stdout.lower()


def test_no_arguments_shows_help_instead_of_doing_something(helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = helps["none"]
    assert "serve" in r.stdout + r.stderr and "Usage" in r.stdout + r.stderr


@pytest.mark.parametrize("name,options", [
    ("serve", ("--config", "--host", "--port", "--demo", "--log-format", "--log-level")),
    ("config", ("check",)),
    ("config check", ("FILE",)),
    ("usage", ("--config", "--since", "--project")),
    ("version", ()),
])
def test_each_sub_command_help_documents_its_options(helps: dict[str, subprocess.CompletedProcess[str]],
                                                     name: str, options: tuple[str, ...]) -> None:
    r = helps[name]
    args = name.split()
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for opt in options:
        assert opt.lower() in out.lower(), f"{' '.join(args)} --help does not document {opt}"
    # every option line carries a description, not just a name
    for opt in options:
        if opt.startswith("--"):
            line = next(ln for ln in out.splitlines() if opt + " " in ln or ln.rstrip().endswith(opt))
            words = re.sub(r"[│╭╮╰╯─]", " ", line).split()
            assert len(words) >= 3, f"{opt} has no help text: {line!r}"
    assert "--help" in out


def test_serve_help_names_the_defaults(helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = helps["serve"].stdout
    assert "127.0.0.1" in out and "8930" in out and "json" in out


def test_version_prints_the_package_version(helps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    from tollway import __version__

    for name in ("print-version", "--version", "-V"):
        r = helps[name]
        assert r.returncode == 0 and r.stdout.strip() == __version__, (name, r.stdout, r.stderr)


@pytest.mark.parametrize("short,long", [("-h", "top"), ("serve -h", "serve"), ("config check -h", "config check"),
                                        ("usage -h", "usage")])
def test_dash_h_is_help_everywhere(helps: dict[str, subprocess.CompletedProcess[str]], short: str, long: str) -> None:
    assert helps[short].returncode == 0, helps[short].stderr
    assert helps[short].stdout == helps[long].stdout


@pytest.mark.parametrize("name,port", [("port-0", "0"), ("port-65536", "65536")])
def test_a_port_outside_1_to_65535_is_refused(helps: dict[str, subprocess.CompletedProcess[str]], name: str,
                                               port: str) -> None:
    r = helps[name]
    assert r.returncode == 2 and "--port" in r.stderr and f"{port} is not a TCP port: use 1-65535" in r.stderr
    assert "Traceback" not in r.stderr and "listening" not in r.stderr


# -- config check -------------------------------------------------------------------------------

GOOD = f"""
[server]
port = 9100
master_key = "${{TW_TEST_MASTER}}"

[[providers]]
id = "openai"
kind = "openai"
api_key = "${{TW_TEST_OPENAI_KEY}}"
models = ["gpt-4o-mini", "gpt-4.1*"]

[[providers]]
id = "anthropic"
kind = "anthropic"
api_key = "{SECRET}"

[aliases]
fast = "openai:gpt-4o-mini"

[[keys]]
id = "team"
key = "tw-team-secret-key"
project = "alpha"
"""

BAD = f"""
[server]
port = 70000
prot = 8930

[[providers]]
id = "ok"
kind = "openai"
api_key = "{SECRET}"

[[providers]]
id = "gem"
kind = "gemini-ultra"
api_key = "{SECRET}"
"""

MISSING_ENV = """
[[providers]]
id = "openai"
kind = "openai"
api_key = "${TW_TEST_SURELY_UNSET_KEY}"
"""

SEMANTIC = {
    "duplicate": ('[[providers]]\nid = "a"\nkind = "openai"\n[[providers]]\nid = "a"\nkind = "anthropic"\n',
                  "providers[1].id", "duplicate provider id 'a'"),
    "alias": ('[[providers]]\nid = "a"\nkind = "openai"\n[aliases]\nfast = "zzz:gpt-4o"\n',
              "aliases.fast", "unknown provider 'zzz'"),
    "key": ('[[keys]]\nid = "k"\n', "keys[0].key", "required"),
}
GOOD_ENV = {"TW_TEST_MASTER": "tw-master-xyz", "TW_TEST_OPENAI_KEY": "sk-from-env-abc"}


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every config-file invocation of this module, run at once; name -> result (+ "<name>.path")."""
    d = tmp_path_factory.mktemp("cli-config")
    files = {"good": GOOD, "bad": BAD, "missing-env": MISSING_ENV, "invalid-toml": "[server\nport = 1\n",
             "serve-bad": '[server]\nport = "eighty"\n', **{k: v[0] for k, v in SEMANTIC.items()}}
    paths = {}
    for name, text in files.items():
        paths[name] = d / f"{name}.toml"
        paths[name].write_text(text)
    paths["missing-file"] = d / "nope.toml"
    calls: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        name: (("config", "check", str(path)), GOOD_ENV if name == "good" else {}) for name, path in paths.items()}
    calls["serve-bad"] = (("serve", "--config", str(paths["serve-bad"]), "--port", "1"), {})
    calls["serve-bad-log-format"] = (("serve", "--log-format", "xml", "--port", "1"), {})
    calls["usage-bad-since"] = (("usage", "--since", "last tuesday"), {})
    calls["usage-no-store"] = (("usage",), {})
    empty = d / "empty-workdir"
    empty.mkdir()
    out = tollway_cli_many(calls, cwd=empty)
    for name, path in paths.items():
        out[name].args = str(path)  # where the file was, for the assertions below
    return out


def test_config_check_accepts_a_good_file(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["good"]
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "2 provider" in r.stdout and "1 key" in r.stdout and "1 alias" in r.stdout
    for secret in (SECRET, "tw-master-xyz", "sk-from-env-abc", "tw-team-secret-key"):
        assert secret not in r.stdout + r.stderr


def test_the_example_config_in_the_repo_passes_on_a_fresh_machine() -> None:
    example = Path(__file__).resolve().parent.parent / "tollway.example.toml"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_KEY", "_BASE_URL"))}
    r = subprocess.run([sys.executable, "-m", "tollway", "config", "check", str(example)], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_config_check_reports_every_problem_with_its_key_path(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["bad"]
    assert r.returncode != 0
    err = r.stderr
    assert re.search(r"providers\[1\]\.kind\b.*openai.*anthropic", err), err
    assert re.search(r"server\.port\b.*65535", err), err
    assert re.search(r"server\.prot\b", err), err  # an unknown key is named, not ignored
    assert SECRET not in r.stdout + err


def test_config_check_names_a_missing_env_var_and_where_it_is_used(
        checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["missing-env"]
    assert r.returncode != 0
    line = next(ln for ln in r.stderr.splitlines() if "TW_TEST_SURELY_UNSET_KEY" in ln)
    assert "providers[0].api_key" in line and "not set" in line


def test_config_check_invalid_toml(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["invalid-toml"]
    assert r.returncode != 0
    assert "invalid TOML" in r.stderr and "line 1" in r.stderr and str(r.args) in r.stderr
    assert "Traceback" not in r.stderr


def test_config_check_missing_file(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["missing-file"]
    assert r.returncode != 0
    assert str(r.args) in r.stderr and "no such file" in r.stderr.lower()
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_config_check_semantic_problems(checks: dict[str, subprocess.CompletedProcess[str]], name: str) -> None:
    _, path, words = SEMANTIC[name]
    r = checks[name]
    assert r.returncode != 0
    assert any(ln.startswith(f"error: {path}:") and words in ln for ln in r.stderr.splitlines()), r.stderr


def test_serve_with_a_bad_config_exits_non_zero_and_says_why(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["serve-bad"]
    assert r.returncode != 0
    assert "server.port" in r.stderr and "Traceback" not in r.stderr


def test_serve_rejects_unknown_log_format(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["serve-bad-log-format"]
    assert r.returncode != 0 and "--log-format" in r.stderr


# -- usage --------------------------------------------------------------------------------------


def test_usage_prints_a_table_from_the_store(tmp_path: Path) -> None:
    tw = Tollway(tmp_path, None, demo=True)
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key="unused", max_retries=0, timeout=20)
        for project in ("alpha", "alpha", "beta"):
            client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-tollway-project": project})
        client.embeddings.create(model="demo-embed", input="hello", extra_headers={"x-tollway-project": "beta"})
    finally:
        assert tw.stop() == 0

    runs = tollway_cli_many({"all": (("usage",), {}), "beta": (("usage", "--project", "beta"), {}),
                             "future": (("usage", "--since", "2999-01-01"), {})}, cwd=tmp_path)
    r = runs["all"]
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(ln for ln in lines if "model" in ln and "requests" in ln)
    for col in ("input tokens", "output tokens", "cost USD", "p50 ms", "p95 ms", "errors"):
        assert col in header
    cells = {ln.split()[1]: ln for ln in lines if re.match(r"^\W*(demo|demo-embed|TOTAL)\s", ln)}
    assert set(cells) == {"demo", "demo-embed", "TOTAL"}, r.stdout

    def numbers(row: str) -> list[str]:
        return re.findall(r"\d+(?:\.\d+)?", row.split(None, 2)[2])

    demo, total = numbers(cells["demo"]), numbers(cells["TOTAL"])
    assert demo[0] == "3" and demo[1] == "0" and int(demo[2]) > 0 and int(demo[3]) > 0  # requests, errors, tokens
    assert total[0] == "4"
    assert float(total[4]) > 0  # cost

    only_beta = runs["beta"]
    assert only_beta.returncode == 0
    total_beta = next(ln for ln in only_beta.stdout.splitlines() if "TOTAL" in ln)
    assert numbers(total_beta)[0] == "2"

    future = runs["future"]
    assert future.returncode == 0
    assert numbers(next(ln for ln in future.stdout.splitlines() if "TOTAL" in ln))[0] == "0"


def test_usage_groups_by_any_attribute_as_json_with_unpriced_calls(tmp_path: Path) -> None:
    tw = Tollway(tmp_path, None, demo=True)
    try:
        client = openai.OpenAI(base_url=tw.url + "/v1", api_key="unused", max_retries=0, timeout=20)
        for source in ("batch", "batch", "web"):
            client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-tollway-source": source})
        with pytest.raises(openai.NotFoundError):  # recorded, without a price
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-tollway-source": "web"})
        api = {by: tw.get(f"/v1/stats?group_by={by}&since=7d", key=None)[1] for by in ("source", "day")}
    finally:
        assert tw.stop() == 0
    import json

    runs = tollway_cli_many({"json": (("usage", "--by", "source", "--since", "7d", "--json"), {}),
                             "day": (("usage", "--by", "day", "--since", "7d", "--until", "now"), {}),
                             "bad-by": (("usage", "--by", "colour"), {})}, cwd=tmp_path)
    assert runs["json"].returncode == 0, runs["json"].stderr
    got = json.loads(runs["json"].stdout)
    assert [(g["source"], g["requests"], g["unpriced"], g["cost_usd"]) for g in got["groups"]] == \
        [(g["source"], g["requests"], g["unpriced"], g["cost_usd"]) for g in api["source"]["groups"]]
    assert {g["source"]: g["unpriced"] for g in got["groups"]} == {"batch": 0, "web": 1}
    assert got["totals"]["requests"] == 4
    day = runs["day"]
    assert day.returncode == 0, day.stderr
    header = next(ln for ln in day.stdout.splitlines() if "unpriced" in ln)
    assert "day" in header and "cost USD" in header
    total = next(ln for ln in day.stdout.splitlines() if "TOTAL" in ln)
    assert re.findall(r"\d+", total)[0] == "4" and api["day"]["totals"]["cost_usd"] in total
    assert runs["bad-by"].returncode == 2 and "--by must be one of" in runs["bad-by"].stderr


def test_usage_with_a_bad_since_is_a_clear_error(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["usage-bad-since"]
    assert r.returncode != 0
    assert "since" in r.stderr and "Traceback" not in r.stderr


def test_usage_without_a_store_says_so(checks: dict[str, subprocess.CompletedProcess[str]]) -> None:
    r = checks["usage-no-store"]
    assert r.returncode == 0, r.stderr
    assert "no records" in r.stdout.lower() and "Traceback" not in r.stderr


def test_the_readme_documents_every_option_of_every_command(helps: dict[str, subprocess.CompletedProcess[str]]
                                                             ) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Command line"):]
    section = section[:section.index("\n## ")]
    for name in ("top", "serve", "usage"):
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", helps[name].stdout)) - {"--help"}
        assert options, name
        missing = sorted(o for o in options if o not in section)
        assert not missing, f"README's Command line section does not show {name} {missing}"
