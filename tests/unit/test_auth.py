"""API keys, scopes and quotas: the gate every RPC passes, without Ray or gRPC."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from deployments.auth import quotas
from deployments.auth.config import AuthConfig, AuthSettings, KeyEntry, Quotas
from deployments.auth.guard import ADMIN_RPCS, Gate
from deployments.auth.keys import hash_key, lookup, new_key, resolve_settings
from deployments.auth.quotas import MemoryStore
from deployments.errors import PermissionDenied, QuotaExceeded, Unauthenticated
from maestro import envs


def _entry(name: str, key: str, **quota: int) -> KeyEntry:
    return KeyEntry(
        name=name, sha256=hash_key(key), scopes=("text",), quotas=Quotas(**quota)
    )


def _gate(*entries: KeyEntry) -> Gate:
    settings = AuthSettings(enabled=True, keys=entries, quota_store="memory")
    return Gate(settings, MemoryStore())


def _bearer(key: str) -> list[tuple[str, str]]:
    return [("application", "text"), ("authorization", f"Bearer {key}")]


def test_keys_are_found_by_hash_only() -> None:
    key, other = new_key(), new_key()
    assert key.startswith("mae_") and key != other and len(key) > 40
    entries = (_entry("a", key), _entry("b", other))
    assert lookup(key, entries) is entries[0]
    assert lookup(other, entries) is entries[1]
    assert lookup(key + "x", entries) is None
    assert key not in entries[0].model_dump_json()


def test_missing_and_unknown_keys_are_unauthenticated_without_saying_which() -> None:
    key = new_key()
    gate = _gate(_entry("alice", key))
    with pytest.raises(Unauthenticated, match="authorization: Bearer"):
        gate.authenticate([("application", "text")])
    with pytest.raises(Unauthenticated, match="authorization: Bearer"):
        gate.authenticate([("authorization", "Basic abc")])
    with pytest.raises(Unauthenticated) as info:
        gate.authenticate(_bearer("mae_guess"))
    assert str(info.value) == "invalid API key"  # no names, no hints
    assert gate.authenticate(_bearer(key)).name == "alice"  # type: ignore[union-attr]


def test_scopes_decide_families_rpcs_and_admin() -> None:
    key = new_key()
    gate = _gate()
    text_only = _entry("t", key)
    gate.authorize(text_only, "text", "StreamText")
    with pytest.raises(PermissionDenied, match="may not call image.GenerateImage"):
        gate.authorize(text_only, "image", "GenerateImage")
    one_rpc = text_only.model_copy(update={"scopes": ("text.StreamText",)})
    gate.authorize(one_rpc, "text", "StreamText")
    with pytest.raises(PermissionDenied):
        gate.authorize(one_rpc, "text", "GenerateText")
    everything = text_only.model_copy(update={"scopes": ("*",)})
    gate.authorize(everything, "voice", "Synthesize")
    assert {"LoadModel", "UnloadAdapter", "CacheStats", "ClearCache"} <= ADMIN_RPCS
    for rpc in sorted(ADMIN_RPCS):  # model, adapter and cache administration
        with pytest.raises(PermissionDenied, match="needs scope admin"):
            gate.authorize(everything, "text", rpc)  # '*' excludes admin
    admin = text_only.model_copy(update={"scopes": ("admin",)})
    gate.authorize(admin, "text", "LoadModel")
    gate.authorize(admin, "image", "LoadAdapter")


def test_bad_scopes_and_hashes_fail_at_start() -> None:
    with pytest.raises(ValueError, match="scope 'txt'"):
        KeyEntry(name="x", sha256="0" * 64, scopes=("txt",))
    with pytest.raises(ValueError, match="64 lowercase hex"):
        KeyEntry(name="x", sha256="not-a-hash")
    with pytest.raises(ValueError, match="quota_store"):
        AuthConfig(quota_store="postgres://x")


async def test_requests_per_minute_refuse_with_the_time_to_refill() -> None:
    key = new_key()
    entry = _entry("a", key, requests_per_minute=2)
    gate = _gate(entry)
    for _ in range(2):
        await gate.settle(await gate.admit(entry, "text", 0, direct=True))
    with pytest.raises(QuotaExceeded) as info:
        await gate.admit(entry, "text", 0, direct=True)
    assert info.value.quota == "requests_per_minute" and info.value.limit == 2
    # The refill time reported: within the window (a value, not a timing).
    assert 0 < info.value.retry_after_s <= quotas.WINDOW_S  # a value, not a timing
    # Calls the studio makes on this key's behalf are not requests of their own.
    await gate.admit(entry, "text", 0, direct=False)


async def test_concurrency_slots_are_freed_when_calls_end() -> None:
    entry = _entry("a", new_key(), concurrent_requests=1)
    gate = _gate(entry)
    first = await gate.admit(entry, "text", 0, direct=True)
    with pytest.raises(QuotaExceeded, match="concurrent_requests"):
        await gate.admit(entry, "text", 0, direct=True)
    await gate.settle(first)
    await gate.settle(await gate.admit(entry, "text", 0, direct=True))


async def test_family_budgets_count_upfront_cost_and_usage_after() -> None:
    entry = KeyEntry(
        name="a",
        sha256=hash_key(new_key()),
        quotas=Quotas(text_tokens_per_minute=100, voice_chars_per_minute=50),
    )
    gate = _gate(entry)
    # Text: unknown up front, charged from usage at the end.
    await gate.settle(await gate.admit(entry, "text", 0, direct=True), used=100)
    with pytest.raises(QuotaExceeded, match="text_tokens_per_minute"):
        await gate.admit(entry, "text", 0, direct=True)
    # Voice: characters known up front; a handle call draws on the same budget.
    await gate.admit(entry, "voice", 40, direct=False)
    with pytest.raises(QuotaExceeded, match="voice_chars_per_minute"):
        await gate.admit(entry, "voice", 20, direct=True)
    await gate.admit(entry, "voice", 10, direct=True)
    # Image has no budget on this key: unlimited.
    await gate.admit(entry, "image", 10**9, direct=True)


async def test_windows_refill(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(quotas.time, "time", lambda: clock[0])
    entry = _entry("a", new_key(), requests_per_minute=1)
    gate = _gate(entry)
    await gate.admit(entry, "text", 0, direct=True)
    with pytest.raises(QuotaExceeded) as info:
        await gate.admit(entry, "text", 0, direct=True)
    clock[0] += info.value.retry_after_s
    await gate.admit(entry, "text", 0, direct=True)


def test_the_local_key_is_created_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "home" / "api_key"
    monkeypatch.delenv(envs.MAESTRO_API_KEY.name, raising=False)
    monkeypatch.setenv(envs.MAESTRO_API_KEY_FILE.name, str(key_file))
    settings = resolve_settings(AuthConfig(), tmp_path)
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [e.name for e in settings.keys] == ["local"]
    assert settings.keys[0].sha256 == hash_key(key)
    assert key not in settings.to_env()  # replicas get hashes only
    again = resolve_settings(AuthConfig(), tmp_path)
    assert again.keys[0].sha256 == hash_key(key)  # kept, not replaced


def test_keys_file_entries_join_the_local_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(envs.MAESTRO_API_KEY.name, "mae_local")
    (tmp_path / "keys.yaml").write_text(
        f"- name: ci\n  sha256: {hash_key('mae_ci')}\n  scopes: [voice]\n"
    )
    settings = resolve_settings(AuthConfig(keys_file="keys.yaml"), tmp_path)
    assert {e.name: e.scopes for e in settings.keys} == {
        "ci": ("voice",),
        "local": ("*", "admin"),
    }
    round_trip = AuthSettings.from_env({envs.MAESTRO_AUTH.name: settings.to_env()})
    assert round_trip == settings
    assert json.loads(settings.to_env())["enabled"] is True


def test_without_the_launcher_auth_is_off() -> None:
    assert AuthSettings.from_env({}).enabled is False
    gate = Gate(AuthSettings.from_env({}), MemoryStore())
    assert gate.authenticate([]) is None


def test_cli_keys_create_appends_a_hash_the_server_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from maestro.cli import main

    keys_file = tmp_path / "keys.yaml"
    argv = ["keys", "create", "alice", "--keys-file", str(keys_file)]
    assert main([*argv, "--scope", "text", "--rpm", "60"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("mae_") and key not in keys_file.read_text()
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    with pytest.raises(SystemExit, match="already"):
        main(argv)
    monkeypatch.setenv(envs.MAESTRO_API_KEY.name, "mae_local")
    settings = resolve_settings(AuthConfig(keys_file=str(keys_file)), tmp_path)
    found = lookup(key, settings.keys)
    assert found is not None and found.name == "alice"
    assert found.scopes == ("text",) and found.quotas.requests_per_minute == 60
