"""The student's side of grading: runs inside the sandbox, never in the grader's process.

    python -I runner.py READ_FD WRITE_FD

Started by :mod:`grader.sandbox` with only this file and ``wire.py`` from the course (it must not
import ``grader``). It executes the student's cells in an IPython shell (magics, display and
tracebacks as in a notebook), keeps their outputs within a size budget, and serves the tests'
calls of the student's functions (see ``wire.py``). It reports replaced builtins and
``sys.modules`` entries, which the grader's static scan of the cells can miss; that decides
nothing: the tests do not run here.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import os
import shutil
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402 - after the path is set
import numpy.linalg  # noqa: E402, F401 - loaded now, so that a later import is not "replaced"
import numpy.testing  # noqa: E402, F401
import wire  # noqa: E402

HOME = "/home/student"
MAX_OUTPUTS = 50  # outputs kept per cell
IMAGES = ("image/png", "image/jpeg")


class Capture:
    """The outputs of one cell, each within ``limit`` characters."""

    def __init__(self, limit: int):
        self.limit, self.outputs, self.dropped = limit, [], 0

    def _add(self, output: dict):
        if len(self.outputs) >= MAX_OUTPUTS:
            self.dropped += 1
        else:
            self.outputs.append(output)

    def _cut(self, text) -> str:
        text = str(text)
        more = len(text) - self.limit
        return (
            text if more <= 0 else f"{text[: self.limit]}\n[... {more} more characters not shown]"
        )

    def stream(self, name: str, text: str):
        last = self.outputs[-1] if self.outputs else {}
        if last.get("output_type") == "stream" and last["name"] == name:
            last["text"] = (last["text"] + text)[: self.limit]  # the head; finish() says it was cut
        elif text:
            self._add({"output_type": "stream", "name": name, "text": text[: self.limit]})

    def data(self, kind: str, data: dict):
        out = {}
        for mime in IMAGES:
            value = data.get(mime)
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            if isinstance(value, str) and len(value) <= self.limit:
                out[mime] = value
            elif value is not None:
                out["text/plain"] = f"[an image of {len(value) // 1024} kB, not shown]"
        if "text/plain" in data and "text/plain" not in out:
            out["text/plain"] = self._cut(data["text/plain"])
        if out:
            self._add({"output_type": kind, "data": out})

    def error(self, ename: str, evalue: str, traceback: list[str]):
        lines, size = [], 0
        for line in map(str, traceback):
            size += len(line)
            if size > self.limit:
                lines.append("[... traceback cut]")
                break
            lines.append(line)
        evalue = self._cut(evalue)[:4000]
        self._add({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines})

    def finish(self) -> list[dict]:
        for out in self.outputs:
            if out["output_type"] == "stream" and len(out["text"]) >= self.limit:
                out["text"] += "\n[... output cut: more than the limit per output]"
        if self.dropped:
            text = f"[... {self.dropped} more outputs not shown]\n"
            self.outputs.append({"output_type": "stream", "name": "stdout", "text": text})
        return self.outputs


class Stream(io.TextIOBase):
    """sys.stdout / sys.stderr while a cell runs (``capture`` None: dropped); no fileno."""

    encoding, errors = "utf-8", "replace"

    def __init__(self, capture: Capture | None, name: str):
        self.capture, self.name = capture, name

    def write(self, text) -> int:
        if self.capture is not None:
            self.capture.stream(self.name, str(text))
        return len(text)


CAPTURE: Capture | None = None


def make_shell():
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            if CAPTURE is not None:
                CAPTURE.data("execute_result", format_dict)

        def finish_displayhook(self):
            pass

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            if CAPTURE is not None:
                CAPTURE.data("display_data", data)

        def clear_output(self, wait=False):
            pass

    class Shell(InteractiveShell):
        displayhook_class, display_pub_class = Type(Hook), Type(Publisher)

        def _showtraceback(self, etype, evalue, stb):
            if CAPTURE is not None:
                CAPTURE.error(etype.__name__, wire.safe_str(evalue), list(stb))

        def init_virtualenv(self):
            pass

        def enable_gui(self, gui=None):
            pass  # %matplotlib inline: no event loop to start

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    shell = Shell.instance(config=config)
    shell.display_formatter.active_types = ["text/plain", *IMAGES]  # what a notebook shows
    return shell


class Watch:
    """Notices replaced builtins and ``sys.modules`` entries (best effort; decides nothing)."""

    MODULES = ("builtins", "sys", "numpy", "numpy.testing", "numpy.linalg", "torch", "unittest")

    def __init__(self):
        self.builtins = dict(vars(builtins))
        self.modules = {name: sys.modules.get(name) for name in self.MODULES}
        self.found: list[str] = []

    def check(self):
        now = vars(builtins)
        found = [f"replaced builtins.{k}" for k, v in self.builtins.items()
                 if not k.startswith("_") and now.get(k) is not v]  # fmt: skip
        if now.get("__import__") is not self.builtins["__import__"]:
            found.append("replaced builtins.__import__")
        for name, module in self.modules.items():
            if module is not None and sys.modules.get(name) is not module:
                found.append(f"replaced sys.modules['{name}']")
        self.found += [f for f in found if f not in self.found]

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


def _attempt(action) -> str:
    try:
        action()
        return "ALLOWED"
    except OSError as e:
        return f"denied: {type(e).__name__}: {e.strerror}"


def _fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def selftest(paths: dict, port: int | None = None) -> dict:
    """What the sandbox lets code do: each entry 'denied: ...' or 'ALLOWED'."""
    out = {}
    for label, path in paths.items():
        read = (
            (lambda p=path: os.listdir(p))
            if os.path.isdir(path)
            else (lambda p=path: open(p, "rb").close())
        )
        out[f"read {label}"] = _attempt(read)
    for label, path in (
        ("write outside the working copy", "/usr/bptt-probe"),
        ("write next to the gradebook", paths.get("the gradebook", "/") + "~"),
    ):  # noqa: E501
        out[label] = _attempt(lambda p=path: open(p, "w").write("x"))  # noqa: SIM115
    for label, address in (("connect to the grader's machine", ("127.0.0.1", int(port or 9))),
                           ("reach the network", ("192.0.2.1", 80))):  # fmt: skip
        out[label] = _attempt(lambda a=address: socket.create_connection(a, timeout=2).close())
    out["start a process"] = _attempt(_fork)
    import resource

    out["memory limit"] = f"{resource.getrlimit(resource.RLIMIT_AS)[0] / 2**30:g} GiB"
    return out


def run_cell(shell, source: str, limit: int) -> list[dict]:
    global CAPTURE
    CAPTURE = Capture(limit)
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Stream(CAPTURE, "stdout"), Stream(CAPTURE, "stderr")
    try:
        shell.run_cell(source, store_history=False)
    except BaseException as e:  # noqa: BLE001 - e.g. KeyboardInterrupt between statements
        CAPTURE.error(type(e).__name__, wire.safe_str(e), [])
    finally:
        sys.stdout, sys.stderr = real
        outputs, CAPTURE = CAPTURE.finish(), None
    return outputs


def main(argv: list[str]) -> int:
    channel = wire.Channel(int(argv[1]), int(argv[2]))
    init, _ = channel.recv()
    if init.get("op") == "selftest":
        channel.send(
            {"op": "selftest", "checks": selftest(init.get("paths", {}), init.get("port"))}
        )
        return 0
    limit, contract = int(init["max_output"]), [str(n) for n in init.get("contract", [])]
    work = os.path.join(HOME, "work") if os.path.isdir(HOME) else os.getcwd()
    with contextlib.suppress(OSError):
        shutil.copytree(os.path.join(HOME, "submission"), work, dirs_exist_ok=True)
    with contextlib.suppress(OSError):
        os.chdir(work)
    watch, shell = Watch(), make_shell()
    namespace = shell.user_ns

    def resolve(name):
        if not callable(namespace.get(name)):
            raise NameError(f"name '{name}' is not defined")
        return namespace[name]

    peer = wire.Peer(channel, side=1, resolve=resolve, after_call=watch.check)
    channel.send({"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header, blobs = channel.recv()
        except wire.PeerGone:
            return 0
        if header.get("op") == "exec":
            outputs = run_cell(shell, str(header.get("source", "")), limit)
            watch.check()
            defined = [n for n in contract if callable(namespace.get(n))]
            channel.send({"op": "done", "seq": header.get("seq"), "outputs": outputs,
                          "defined": defined, "tamper": watch.take()})  # fmt: skip
        elif header.get("op") == "call":
            real = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = Stream(None, "stdout")  # what the functions print is dropped
            try:
                peer.serve(header, blobs)
            finally:
                sys.stdout, sys.stderr = real
        elif header.get("op") == "report":
            channel.send({"op": "report", "tamper": watch.take()})
        else:
            return 0


if __name__ == "__main__":
    np.seterr(all="warn")
    sys.exit(main(sys.argv))
