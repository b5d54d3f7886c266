"""A real IPython kernel (jupyter_client) for the failure matrix: run cells, read what a notebook would show."""
from __future__ import annotations

import dataclasses
import os
import queue
import sys
import time

from jupyter_client.manager import KernelManager

_TIMEOUT = 120  # seconds a cell may take before the test fails (the kernel is then shut down)


@dataclasses.dataclass
class Reply:
    """What one executed cell showed: its status, streams, rich outputs and error (as a notebook shows them)."""

    status: str
    stdout: str = ""
    stderr: str = ""
    outputs: list = dataclasses.field(default_factory=list)  # display_data / execute_result bundles
    error: dict | None = None  # ename, evalue, traceback (ANSI stripped)

    @property
    def traceback(self) -> str:
        return "\n".join(self.error["traceback"]) if self.error else ""

    @property
    def text(self) -> str:
        """Everything a reader sees as text: streams, plain-text outputs and the traceback."""
        plain = [bundle.get("text/plain", "") for bundle in self.outputs]
        return "\n".join([self.stdout, self.stderr, *plain, self.traceback])


class Kernel:
    """A fresh ipykernel with gradmagic loaded; `run` executes one cell and waits for it."""

    def __init__(self, load: bool = True):
        self.manager = KernelManager(kernel_name="python3")
        self.manager.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        self.manager.start_kernel(env={**os.environ, "MPLBACKEND": "Agg"})
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        if load:
            assert self.run("%load_ext gradmagic\nimport torch").status == "ok"

    def run(self, code: str, timeout: float = _TIMEOUT, on_start=None) -> Reply:
        """Execute `code`; `on_start()` is called once the kernel says the cell is busy (to interrupt it, say).

        A kernel that dies meanwhile gives status "dead"; one still busy after `timeout` seconds, "timeout"."""
        msg_id = self.client.execute(code, store_history=True)
        reply = Reply(status="?")
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                if not self.manager.is_alive():
                    reply.status = "dead"
                    return reply
                if time.monotonic() > deadline:
                    reply.status = "timeout"
                    return reply
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "busy" and on_start:
                on_start()
            elif kind == "status" and content["execution_state"] == "idle":
                break
            elif kind == "stream":
                setattr(reply, content["name"], getattr(reply, content["name"]) + content["text"])
            elif kind in ("display_data", "execute_result"):
                reply.outputs.append(content["data"])
            elif kind == "error":
                reply.error = {**content, "traceback": [_plain(line) for line in content["traceback"]]}
        reply.status = self._shell_reply(msg_id, timeout)["content"]["status"]
        return reply

    def _shell_reply(self, msg_id: str, timeout: float) -> dict:
        """The shell channel's reply to `msg_id` (replies to earlier requests, such as kernel_info's, are skipped)."""
        while True:
            msg = self.client.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def value(self, expression: str):
        """The Python value of an expression in the kernel (via its repr, read back with eval)."""
        reply = self.run(f"print(repr({expression}))")
        assert reply.status == "ok", reply.text
        return eval(reply.stdout.strip())  # noqa: S307 - reprs of our own test values

    def alive(self) -> bool:
        """Whether the kernel process still runs and answers."""
        return self.manager.is_alive() and self.run("1", timeout=30).status == "ok"

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _plain(text: str) -> str:
    """`text` without ANSI colour codes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
