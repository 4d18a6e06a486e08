"""Starting the service: key from the environment, EU-only, callers, CLI."""

from __future__ import annotations

import pytest

from mathpix_nb._exceptions import ConfigurationError
from mathpix_nb.tokens import Callers, create_app, hash_secret
from mathpix_nb.tokens import cli as token_cli
from mathpix_nb.tokens._ratelimit import RateLimiter

KEY = "secret-app-key-for-config-tests"
CALLERS = {"alice": "alice-secret-0123456789abcdef"}


def test_key_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MATHPIX_APP_ID", "team-app")
    monkeypatch.setenv("MATHPIX_APP_KEY", KEY)
    app = create_app(callers=CALLERS)
    service = app.state.token_service
    assert service.upstream.app_key == KEY
    assert service.upstream.base_url == "https://api.mathpix.com"
    assert KEY not in repr(service)


def test_missing_key_refuses_to_start_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="MATHPIX_APP_KEY"):
        create_app(callers=CALLERS)


def test_no_way_to_authenticate_callers_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="callers-file"):
        create_app(app_key=KEY)


def test_eu_region_uses_the_eu_host() -> None:
    app = create_app(app_key=KEY, callers=CALLERS, region="eu-central-1")
    upstream = app.state.token_service.upstream
    assert (upstream.base_url, upstream.region, upstream.is_eu) == (
        "https://eu.api.mathpix.com",
        "eu",
        True,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"region": "global", "eu_only": True},
        {"region": "eu", "base_url": "https://api.mathpix.com"},
        {"eu_only": True, "base_url": "http://127.0.0.1:9"},
        {"region": "eu", "environ": {"MATHPIX_URL": "https://api.mathpix.com"}},
    ],
    ids=["global-region", "eu-region-global-url", "loopback-url", "env-url"],
)
def test_eu_only_refuses_a_non_eu_upstream(kwargs) -> None:
    with pytest.raises(ConfigurationError, match="EU-only") as info:
        create_app(app_key=KEY, callers=CALLERS, **kwargs)
    assert KEY not in str(info.value)


def test_eu_only_accepts_the_documented_eu_hosts() -> None:
    for url in ("https://eu.api.mathpix.com", "https://eu-central-1.api.mathpix.com/"):
        app = create_app(app_key=KEY, callers=CALLERS, base_url=url, eu_only=True)
        assert app.state.token_service.upstream.is_eu


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"region": "mars"}, "(?i)unknown .*region"),
        ({"expires": 50_000}, "43200"),
        ({"expires": 0}, "expires"),
        ({"expires": 60, "min_expires": 120}, "min_expires"),
        ({"rate_limit_per_minute": 0}, "rate_limit"),
        ({"hub_api_url": "hub:8081"}, "hub_api_url"),
        ({"callers": {"alice": "short"}}, "too short"),
        ({"callers": {"bad name": "x" * 20}}, "caller name"),
        ({"callers": {"a": "x" * 20, "b": "x" * 20}}, "share the same secret"),
    ],
)
def test_bad_settings_are_named(kwargs, match) -> None:
    options = {"app_key": KEY, "callers": CALLERS, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        create_app(**options)


def test_callers_file_errors_name_the_file_and_line(tmp_path) -> None:
    path = tmp_path / "callers"
    path.write_text("alice sha256:abc\n")
    with pytest.raises(ConfigurationError, match="sha256:<64 hex digits>"):
        create_app(app_key=KEY, callers_file=path)
    path.write_text(f"alice {hash_secret('a' * 20)}\nalice {hash_secret('b' * 20)}\n")
    with pytest.raises(ConfigurationError, match=r"appears twice \(line 2\)"):
        create_app(app_key=KEY, callers_file=path)
    with pytest.raises(ConfigurationError, match="cannot read the callers file"):
        create_app(app_key=KEY, callers_file=tmp_path / "missing")


def test_callers_compare_hashes_and_repr_shows_names_only() -> None:
    callers = Callers.from_secrets({"alice": "a" * 20, "bob": hash_secret("b" * 20)})
    assert callers.identify("a" * 20) == "alice"
    assert callers.identify("b" * 20) == "bob"
    assert callers.identify("c" * 20) is None
    assert callers.identify(hash_secret("b" * 20)) is None
    assert "a" * 20 not in repr(callers) and "sha256" not in repr(callers)


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=6, burst=2, clock=lambda: now[0])
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert limiter.acquire("b") == 0.0
    now[0] = 10.0
    assert limiter.acquire("a") == 0.0


def test_cli_refuses_to_start_with_a_non_eu_upstream(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("MATHPIX_APP_KEY", KEY)
    monkeypatch.setenv("MATHPIX_URL", "https://api.mathpix.com")
    path = tmp_path / "callers"
    path.write_text(f"alice {hash_secret('a' * 20)}\n")
    code = token_cli.main(["--callers-file", str(path), "--region", "eu", "--port", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "EU-only" in err and KEY not in err


def test_cli_jupyterhub_mode_needs_the_hub_url(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MATHPIX_APP_KEY", KEY)
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    assert token_cli.main(["--jupyterhub"]) == 2
    assert "JUPYTERHUB_API_URL" in capsys.readouterr().err


def test_cli_new_caller_stores_only_the_hash(tmp_path, capsys) -> None:
    path = tmp_path / "callers"
    assert token_cli.main(["new-caller", "alice", "--callers-file", str(path)]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret and secret not in path.read_text()
    assert path.read_text().strip() == f"alice {hash_secret(secret)}"
    assert (path.stat().st_mode & 0o777) == 0o600
    app = create_app(app_key=KEY, callers_file=path)
    assert app.state.token_service.callers.identify(secret) == "alice"
    assert token_cli.main(["new-caller", "alice", "--callers-file", str(path)]) == 2


def test_cli_hash_reads_stdin(monkeypatch, capsys) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("my-long-secret-value-123\n"))
    assert token_cli.main(["hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_secret("my-long-secret-value-123")
