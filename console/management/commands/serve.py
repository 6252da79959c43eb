"""python manage.py serve — the web console, a Celery worker and beat, stopped together by Ctrl-C.

What `make run` starts on the embedded defaults; production runs gunicorn, workers and one beat
as separate services instead (docs/deployment.md).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from console import demo


class Command(BaseCommand):
    help = "Run the console, one Celery worker and the beat scheduler until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args: Any, addr: str, concurrency: int, **options: Any) -> None:
        python = sys.executable
        commands = {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "console",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "console",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }
        processes = {name: subprocess.Popen(command) for name, command in commands.items()}
        self.stdout.write(self.style.SUCCESS(f"Crosswalk is running on http://{addr}/"))
        demo_users = [
            name for name, _ in demo.DEMO_USERS if User.objects.filter(username=name).exists()
        ]
        if demo_users:
            self.stdout.write(
                f"Demo logins: {', '.join(demo_users)} — password {demo.DEMO_PASSWORD!r}"
            )
        self.stdout.write("Press Ctrl-C to stop the console, the worker and beat.")
        # Ctrl-C and a plain `kill` both stop everything, even when started in the background
        # (where shells start programs with SIGINT ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            dead = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(dead)} stopped; stopping the rest.")
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            _stop_all(list(processes.values()))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
