"""A whole Crosswalk stack in subprocesses, as an operator would run it.

Each test session gets its own database (a fresh PostgreSQL database when DATABASE_URL points at
PostgreSQL, else a SQLite file), migrated by `manage.py migrate`; a real Celery worker with its
embedded beat on the configured broker (Redis on CI, the filesystem transport by default); the
console served by `runserver`; and headless Chromium driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"


@dataclass
class Stack:
    env: dict[str, str]
    base_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_database(tmp: Path) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp / 'e2e.sqlite3'}"
        return
    import psycopg

    name = f"crosswalk_e2e_{uuid.uuid4().hex[:10]}"
    server = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the web server exited with {process.returncode}")
        try:
            with urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    database = _fresh_database(tmp)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": next(database),
        "CROSSWALK_DATA_DIR": str(tmp / "data"),
        "CROSSWALK_BROKER_DIR": str(tmp / "broker"),
        "CROSSWALK_SWEEP_SECONDS": "2",
        "CROSSWALK_NUDGE_WORKERS": "true",
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(env=env, base_url=f"http://127.0.0.1:{port}")
    stack.manage("migrate", "--noinput")
    stack.manage("load_demo", "--invoices", "0", "--timecard-weeks", "0")
    logs = tmp / "logs"
    logs.mkdir()
    worker = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "console",
        "worker",
        "--beat",
        "--schedule",
        str(tmp / "beat-schedule"),
        "--concurrency",
        "2",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
        "--hostname",
        "e2e@%h",
    ]
    web = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    for name, command in (("worker", worker), ("web", web)):
        log = (logs / f"{name}.log").open("wb")
        stack.processes.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        _wait_for_http(f"{stack.base_url}/login/", stack.processes[-1])
        yield stack
    finally:
        for process in stack.processes:
            process.terminate()
        for process in stack.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in ("worker", "web"):
            print(f"--- {name} log (tail) ---")
            print((logs / f"{name}.log").read_text(errors="replace")[-3000:])
        next(database, None)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise AssertionError("Chromium is not installed: run .ci/ensure-chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
