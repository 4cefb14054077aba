"""The app served on loopback and driven by headless Chromium: shared by the end-to-end tests
(``tests/test_app_browser.py``, ``tests/test_app_concurrency.py``) and the many-users benchmark
(``benchmarks/bench_app.py``, which puts ``tests/`` on ``sys.path`` to import it). Test code,
not part of the package.

Chromium is Debian's ``/usr/bin/chromium`` (``scripts/install-browser``), driven through
Playwright's Python API with ``executable_path``; Playwright's own browser downloads are never
used. Needs the ``test`` extra (``playwright``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "IDLE_JS", "chromium", "free_port", "served_app"]

#: The browser (override with the environment variable ASUC_BAYES_CHROMIUM).
CHROMIUM = Path(os.environ.get("ASUC_BAYES_CHROMIUM", "/usr/bin/chromium"))
#: Flags that work here as root on a machine without network access beyond loopback.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: True when Shiny is neither busy nor recalculating a visible output (outputs in hidden tabs
#: are suspended and keep their "recalculating" mark until shown).
IDLE_JS = (
    "() => !document.documentElement.classList.contains('shiny-busy') && "
    "Array.from(document.querySelectorAll('.recalculating'))"
    ".every(e => e.offsetParent === null)"
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served_app(timeout_s: float = 300.0, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``asuc-bayes app`` on a free loopback port; yield its URL; stop it afterwards.

    The timeout covers compiling the model when the disk cache is empty (~1 min on 2 cores).
    Raises ``RuntimeError`` (with the app's output) if it exits or does not answer in time.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "asuc_bayes.interfaces.cli",
        "app",
        "--port",
        str(port),
        "--quiet",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([*command, *extra_args], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"the app exited with code {process.returncode}:\n{output}")
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the app did not answer on {url} within {timeout_s:g} s"
                        ) from None
                    time.sleep(0.25)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def chromium(**context_options) -> Iterator:
    """A Playwright browser context in headless Debian Chromium with a fresh profile.

    Raises ``RuntimeError`` when the browser is missing (the tests then fail, not skip).
    """
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium (run "
            "scripts/install-browser as root, or apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=list(CHROMIUM_ARGS),
            headless=True,
            **context_options,
        )
        try:
            yield context
        finally:
            context.close()
