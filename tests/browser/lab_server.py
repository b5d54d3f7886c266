"""A throw-away JupyterLab server: its own port, token, root and settings, nothing in the user's home touched."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Settings written into the server's own settings dir before it starts.
LAB_SETTINGS = {
    # every cell attached to the page, so offscreen outputs have real sizes to measure
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # no news or update toasts over the outputs
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
}


@dataclass
class LabServer:
    """A running server: where it answers and how to stop it."""

    process: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The page or API address at `path`, with the token."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET"):
        """One REST call; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_settings(settings_dir: Path, theme: str) -> None:
    for plugin, values in LAB_SETTINGS.items():
        if plugin.endswith("/themes"):
            values = {**values, "theme": theme}
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _isolated_environment(home: Path) -> dict:
    """Jupyter's and IPython's config, data, runtime, settings and workspace dirs, all under `home`."""
    dirs = {
        "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython",
    }
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    for variable, name in dirs.items():
        (home / name).mkdir(parents=True, exist_ok=True)
        env[variable] = str(home / name)
    return env


def launch_lab(root: Path, home: Path, *, theme: str = "JupyterLab Light") -> LabServer:
    """Start `jupyter lab` serving `root` at a free port; it answers after `wait_until_answering`."""
    env = _isolated_environment(home)
    _write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]), theme)
    port, token, log = free_port(), secrets.token_hex(16), home / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False",
        "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",  # no language-server scan: faster start
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return LabServer(process, port, token, root, log)


def start_lab(root: Path, home: Path, *, theme: str = "JupyterLab Light", timeout: float = 90,
              tries: int = 3) -> LabServer:
    """A server that answers; a new port when another process took the free one first."""
    for attempt in range(tries):
        server = launch_lab(root, home, theme=theme)
        try:
            wait_until_answering(server, timeout)
            return server
        except PortTaken:
            stop_lab(server)
            if attempt == tries - 1:
                raise
        except BaseException:
            stop_lab(server)
            raise


class PortTaken(RuntimeError):
    """The port chosen as free was taken before the server bound it."""


def wait_until_answering(server: LabServer, timeout: float = 90) -> None:
    """Poll the server's status API until it answers; the log's tail in the error if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            error = PortTaken if "already in use" in server.log_tail() else RuntimeError
            raise error(f"jupyter lab exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            server.api("api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer on port {server.port} within {timeout:.0f} s:\n{server.log_tail()}")


def stop_lab(server: LabServer, *, grace: float = 15) -> None:
    """Shut its kernels and itself down; kill its process group if it does not go in `grace` seconds."""
    try:
        for kernel in server.api("api/kernels") or []:
            server.api(f"api/kernels/{kernel['id']}", method="DELETE")
        server.api("api/shutdown", method="POST")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        pass  # already gone or not answering: the signals below still apply
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            server.process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            _signal_group(server.process.pid, sig)
    _signal_group(server.process.pid, signal.SIGKILL)  # stragglers left in the group
    server.process.wait(timeout=grace)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
