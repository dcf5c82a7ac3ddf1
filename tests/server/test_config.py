"""Tests of server.config: defaults, the documented file, env overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Config, ConfigError, TlsConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_documented_file_equals_defaults() -> None:
    assert load_config(ROOT / "config.yaml", env={}) == Config(data_dir=str(ROOT / "data"))


def test_relative_paths_follow_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths are anchored to the configuration file's directory, whoever set them (the file, a
    TAPHUAN_* variable, an override); without a file, to the working directory at load time."""
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = etc / "config.yaml"
    config.write_text("data_dir: var/data\nserver:\n  tls: {cert: tls/cert.pem, key: /srv/key.pem}\n"
                      "database:\n  url: sqlite+aiosqlite:///db/taphuan.sqlite3?timeout=5\n")
    cfg = load_config(config, env={})
    assert cfg.data_path == etc / "var" / "data"
    assert cfg.server.tls == TlsConfig(cert=str(etc / "tls" / "cert.pem"), key="/srv/key.pem")
    assert cfg.database_url == f"sqlite+aiosqlite:///{etc}/db/taphuan.sqlite3?timeout=5"

    cfg = load_config(config, env={"TAPHUAN_DATA_DIR": "other"}, overrides={"database.url": ""})
    assert cfg.data_path == etc / "other"
    assert cfg.database_url == f"sqlite+aiosqlite:///{etc}/other/taphuan.sqlite3"
    assert load_config(config, env={"TAPHUAN_DATA_DIR": "~/d"}).data_path == Path.home() / "d"

    cfg = load_config(None, env={"TAPHUAN_DATABASE__URL": "postgresql+asyncpg://u:p@db/taphuan"})
    assert cfg.data_path == elsewhere / "data"
    assert cfg.database_url == "postgresql+asyncpg://u:p@db/taphuan"
    monkeypatch.chdir(tmp_path)
    assert cfg.data_path == elsewhere / "data"  # absolute once loaded: a later chdir changes nothing
    assert load_config(None, env={}, overrides={"database.url": "sqlite+aiosqlite:///:memory:"}).database_url \
        == "sqlite+aiosqlite:///:memory:"


def test_every_key_is_documented() -> None:
    text = (ROOT / "config.yaml").read_text()

    def walk(model: type, prefix: str = "") -> list[str]:
        names = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            names.append(name)
            ann = info.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                names += walk(ann, prefix + name + ".")
        return names

    for name in walk(Config):
        assert f"{name}:" in text, name


def test_default_timezone_and_database() -> None:
    cfg = load_config(None, env={})
    assert cfg.timezone == "Asia/Ho_Chi_Minh"
    assert cfg.database_url.startswith("sqlite+aiosqlite:///")


def test_env_overrides() -> None:
    cfg = load_config(None, env={"TAPHUAN_SERVER__PORT": "9001", "TAPHUAN_SFU__ICE_ADDRESSES": "[127.0.0.1]",
                                 "TAPHUAN_BUS__KIND": "redis"})
    assert cfg.server.port == 9001
    assert cfg.sfu.ice_addresses == ["127.0.0.1"]
    assert cfg.bus.kind == "redis"


def test_variables_of_scripts_and_tests_are_not_configuration() -> None:
    """TAPHUAN_VENV, TAPHUAN_TEST_LOOP and TAPHUAN_REQUIRE_COMPILED (set by the scripts and the test command) are
    not taken for configuration keys; a misspelt key still is, and stops start-up."""
    env = {"TAPHUAN_VENV": "/tmp/venv", "TAPHUAN_TEST_LOOP": "asyncio", "TAPHUAN_REQUIRE_COMPILED": "1",
           "TAPHUAN_CONFIG": "/etc/taphuan.yaml", "TAPHUAN_SERVER__PORT": "9002"}
    assert load_config(None, env=env).server.port == 9002
    assert load_config(None, env={"TAPHUAN_METRICS__TOKEN": "1234567890123456789"}).metrics.token == \
        "1234567890123456789"  # a secret made of digits stays a string
    with pytest.raises(ConfigError, match="require_compild: unknown key"):
        load_config(None, env={"TAPHUAN_REQUIRE_COMPILD": "1"})


@pytest.mark.parametrize("overrides, expected", [
    ({"sfu.grid_slots": "many"}, "sfu.grid_slots: Input should be a valid integer"),
    ({"sfu.bogus": 1}, "sfu.bogus: unknown key"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown timezone 'Mars/Olympus'"),
    ({"server.port": 70000}, "server.port: Input should be less than or equal to 65535"),
    ({"sfu.video_codec": "AV1"}, "sfu.video_codec: Input should be 'VP8' or 'H264'"),
    ({"sfu.turn.urls": ["turn:x"]}, "sfu.turn.secret is required"),
    ({"sfu.udp_ports": "50000"}, "sfu.udp_ports: use LOW-HIGH"),
    ({"sfu.udp_ports": "60000-50000"}, "sfu.udp_ports: use LOW-HIGH"),
    ({"sfu.publish_bitrate": -1}, "sfu.publish_bitrate: Input should be greater than or equal to 0"),
    ({"sfu.publish_bitrate": "fast"}, "sfu.publish_bitrate: Input should be a valid integer"),
    ({"metrics.allow": ["10.0.0.0/33"]}, "metrics.allow: '10.0.0.0/33' is not an IP address or network"),
    ({"metrics.token": "short"}, "metrics.token: use at least 16 characters"),
])
def test_errors_name_the_key(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides=overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_bad_yaml_and_bad_env(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="server.port"):
        load_config(None, env={"TAPHUAN_SERVER__PORT": "eighty"})
