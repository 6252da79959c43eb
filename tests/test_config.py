import pytest
from django.core.exceptions import ImproperlyConfigured

from console import config


def test_booleans_accept_the_usual_words_and_reject_anything_else(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert config.env_bool("FLAG", default=False) is True
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"FLAG='maybe' is not a boolean"):
        config.env_bool("FLAG", default=False)


def test_whole_numbers_are_checked_against_their_minimum(monkeypatch):
    monkeypatch.setenv("LEASE", "abc")
    with pytest.raises(ImproperlyConfigured, match="not a whole number"):
        config.env_int("LEASE", 5)
    monkeypatch.setenv("LEASE", "0")
    with pytest.raises(ImproperlyConfigured, match="must be at least 5"):
        config.env_int("LEASE", 60, minimum=5)


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is required"):
        config.secret_key(data_dir=tmp_path, production=True)
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ImproperlyConfigured, match="at least 50 characters"):
        config.secret_key(data_dir=tmp_path, production=True)


def test_the_embedded_secret_key_is_generated_once_and_kept_private(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = config.secret_key(data_dir=tmp_path, production=False)
    assert config.secret_key(data_dir=tmp_path, production=False) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_the_embedded_database_is_sqlite_in_wal_mode_with_a_busy_timeout(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    database = config.database_config(data_dir=tmp_path)
    assert database["NAME"] == str(tmp_path / "crosswalk.sqlite3")
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert database["OPTIONS"]["timeout"] == 30


def test_unsupported_database_and_broker_urls_are_rejected_with_the_variable_named(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/crosswalk")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL uses"):
        config.database_config(data_dir=tmp_path)
    monkeypatch.setenv("CELERY_BROKER_URL", "sqs://queue")
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL='sqs://queue'"):
        config.broker_config(data_dir=tmp_path)


def test_the_default_broker_is_a_filesystem_queue_in_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CROSSWALK_BROKER_DIR", raising=False)
    url, options = config.broker_config(data_dir=tmp_path)
    assert url == "filesystem://"
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "broker/queue")
    assert (tmp_path / "broker" / "queue").is_dir()


def test_a_bad_setting_stops_start_up_with_a_clear_message(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "CROSSWALK_DATA_DIR": str(tmp_path), "CROSSWALK_ENV": "staging"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "CROSSWALK_ENV='staging' is not one of: development, test, production" in result.stderr
