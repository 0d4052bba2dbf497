"""The student's side of grading: runs inside the sandbox, never in the grader's process.

    python -I runner.py READ_FD WRITE_FD

Started by :mod:`grader.sandbox` (inside bubblewrap) with only this file and ``wire.py``
from the course; it must not import ``bptt``. It executes the student's cells in an IPython shell
(magics, display and tracebacks as in a notebook), keeps their outputs within a size budget, and
serves calls of the student's functions from the tests, which run in the grader (see
``wire.py``). It also looks for tampering with numpy, torch, builtins or the test helpers; that
is reported, but it decides nothing: the tests do not run here.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import os
import shutil
import socket
import sys
import types

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
        self.limit = limit
        self.outputs: list[dict] = []
        self.dropped = 0
        self.active = True

    def _add(self, output: dict):
        if not self.active:
            return
        if len(self.outputs) >= MAX_OUTPUTS:
            self.dropped += 1
            return
        self.outputs.append(output)

    def _cut(self, text: str) -> str:
        text = str(text)
        if len(text) > self.limit:
            return (
                text[: self.limit] + f"\n[... {len(text) - self.limit} more characters not shown]"
            )
        return text

    def stream(self, name: str, text: str):
        if not self.active or not text:
            return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
            last["text"] = self._cut_stream(last["text"])
        else:
            self._add({"output_type": "stream", "name": name, "text": self._cut_stream(text)})

    def _cut_stream(self, text: str) -> str:
        # Streams grow by small writes: keep the head (finish() says it was cut).
        return text[: self.limit]

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
        for line in traceback:
            line = str(line)
            size += len(line)
            if size > self.limit:
                lines.append("[... traceback cut]")
                break
            lines.append(line)
        self._add({"output_type": "error", "ename": ename, "evalue": self._cut(evalue)[:4000],
                   "traceback": lines})  # fmt: skip

    def finish(self) -> list[dict]:
        for out in self.outputs:
            if out["output_type"] == "stream" and len(out["text"]) >= self.limit:
                out["text"] += "\n[... output cut: more than the limit per output]"
        if self.dropped:
            text = f"[... {self.dropped} more outputs not shown]\n"
            self.outputs.append({"output_type": "stream", "name": "stdout", "text": text})
        return self.outputs


class Stream:
    """sys.stdout / sys.stderr while a cell runs."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, capture: Capture | None, name: str):
        self.capture, self.name = capture, name

    def write(self, text) -> int:
        if self.capture is not None:
            self.capture.stream(self.name, str(text))
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor")


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
        displayhook_class = Type(Hook)
        display_pub_class = Type(Publisher)

        def _showtraceback(self, etype, evalue, stb):
            if CAPTURE is not None:
                CAPTURE.error(etype.__name__, wire._safe_str(evalue), list(stb))

        def init_virtualenv(self):
            pass

        def enable_gui(self, gui=None):
            pass  # %matplotlib inline: no event loop to start

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    shell = Shell.instance(config=config)
    # a plain shell formats text only; keep what a notebook shows of plots too
    shell.display_formatter.active_types = ["text/plain", *IMAGES]
    return shell


# ---------------------------------------------------------------------- tampering
NUMPY_PROBES = [
    "testing.assert_allclose", "testing.assert_array_equal", "testing.assert_array_almost_equal",
    "testing.assert_almost_equal", "testing.assert_equal", "allclose", "isclose", "array_equal",
    "array_equiv", "isfinite", "isnan", "abs", "asarray", "linalg.norm",
]  # fmt: skip
TORCH_PROBES = [
    "allclose", "isclose", "equal", "testing.assert_close", "autograd.grad", "Tensor.backward",
    "nn.utils.clip_grad_norm_", "nn.utils.clip_grad_value_", "nn.functional.cross_entropy",
]  # fmt: skip


class Watch:
    """Notices changes to the test machinery (best effort: the grader does not rely on it)."""

    def __init__(self):
        self.builtins = dict(vars(builtins))
        names = ("builtins", "sys", "numpy", "numpy.testing", "numpy.linalg")
        self.modules = {name: sys.modules.get(name) for name in names}
        self.found: list[str] = []
        self.seen: set[str] = set()

    def note(self, text: str):
        if text not in self.seen:
            self.seen.add(text)
            self.found.append(text)

    def _outside(self, obj, package) -> bool:
        """True when ``obj`` was not defined by ``package`` (e.g. a lambda from a cell)."""
        code = getattr(obj, "__code__", None) or getattr(
            getattr(obj, "__func__", None), "__code__", None
        )
        home = os.path.dirname(os.path.realpath(getattr(package, "__file__", "") or "/nonexistent"))
        if code is not None:
            return not os.path.realpath(code.co_filename).startswith(home)
        module = getattr(type(obj), "__module__", "") or ""
        return not (module == "builtins" or module.split(".")[0] in ("numpy", "torch"))

    def check(self, namespace: dict):
        for name, value in vars(builtins).items():
            if (
                name in self.builtins
                and self.builtins[name] is not value
                and not name.startswith("_")
            ):
                self.note(f"replaced builtins.{name}")
        if builtins.__import__ is not self.builtins["__import__"]:
            self.note("replaced builtins.__import__")
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                self.note(f"replaced sys.modules['{name}']")
        for package, probes in (("numpy", NUMPY_PROBES), ("torch", TORCH_PROBES)):
            root = sys.modules.get(package)
            if root is None:
                continue
            home = getattr(root, "__file__", None)
            if not isinstance(root, types.ModuleType) or not home or not os.path.exists(home):
                self.note(f"replaced the module {package}")
                continue
            for path in probes:
                obj = root
                try:
                    for part in path.split("."):
                        obj = getattr(obj, part)
                except Exception:  # noqa: BLE001 - deleted attributes are tampering too
                    self.note(f"removed {package}.{path}")
                    continue
                if self._outside(obj, root):
                    self.note(f"patched {package}.{path}")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            self.note("set a trace or profile function (sys.settrace)")
        for name in list(namespace):
            if name.startswith(("_check_", "_tc_")):
                self.note(f"defined the test helper name {name}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


# ---------------------------------------------------------------------- self-test
def selftest(paths: dict, port: int | None = None) -> dict:
    """What the sandbox lets code do: each entry 'denied: ...' or 'ALLOWED'."""
    out = {}
    for label, path in paths.items():
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                open(path, "rb").close()  # noqa: SIM115
            out[f"read {label}"] = "ALLOWED"
        except OSError as e:
            out[f"read {label}"] = f"denied: {type(e).__name__}: {e.strerror}"
    grader = paths.get("the gradebook", "/") + ".probe"
    writes = (
        ("write outside the working copy", "/usr/bptt-probe"),
        ("write next to the gradebook", grader),
    )
    for label, path in writes:
        try:
            with open(path, "w") as fh:
                fh.write("x")
            out[label] = "ALLOWED"
        except OSError as e:
            out[label] = f"denied: {type(e).__name__}: {e.strerror}"
    try:
        socket.create_connection(("127.0.0.1", int(port or 9)), timeout=2).close()
        out["connect to the grader's machine"] = "ALLOWED"
    except OSError as e:
        out["connect to the grader's machine"] = f"denied: {type(e).__name__}: {e.strerror}"
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=2).close()
        out["reach the network"] = "ALLOWED"
    except OSError as e:
        out["reach the network"] = f"denied: {type(e).__name__}: {e.strerror}"
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        out["start a process"] = "ALLOWED"
    except OSError as e:
        out["start a process"] = f"denied: {type(e).__name__}: {e.strerror}"
    try:
        import resource

        out["memory limit"] = f"{resource.getrlimit(resource.RLIMIT_AS)[0] / 2**30:g} GiB"
    except (ImportError, ValueError):
        out["memory limit"] = "unknown"
    return out


# ---------------------------------------------------------------------- main loop
def main(argv: list[str]) -> int:
    global CAPTURE
    channel = wire.Channel(int(argv[1]), int(argv[2]))
    init, _ = channel.recv()
    if init.get("op") == "selftest":
        channel.send(
            {"op": "selftest", "checks": selftest(init.get("paths", {}), init.get("port"))}
        )
        return 0
    limit = int(init["max_output"])
    contract = [str(n) for n in init.get("contract", [])]
    source = os.path.join(HOME, "submission")
    work = os.path.join(HOME, "work") if os.path.isdir(HOME) else os.getcwd()
    if os.path.isdir(source):
        with contextlib.suppress(OSError):
            shutil.copytree(source, work, dirs_exist_ok=True)
    with contextlib.suppress(OSError):
        os.chdir(work)
    watch = Watch()
    shell = make_shell()
    namespace = shell.user_ns
    sink = Stream(None, "stdout")

    def resolve(name):
        fn = namespace.get(name)
        if not callable(fn):
            raise NameError(f"name '{name}' is not defined")
        return fn

    peer = wire.Peer(channel, side=1, resolve=resolve, after_call=lambda: watch.check(namespace))
    real_out, real_err = sys.stdout, sys.stderr
    channel.send({"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header, blobs = channel.recv()
        except wire.PeerGone:
            return 0
        op = header.get("op")
        if op == "exec":
            CAPTURE = Capture(limit)
            sys.stdout, sys.stderr = Stream(CAPTURE, "stdout"), Stream(CAPTURE, "stderr")
            try:
                shell.run_cell(str(header.get("source", "")), store_history=False)
            except BaseException as e:  # noqa: BLE001 - e.g. KeyboardInterrupt between statements
                CAPTURE.error(type(e).__name__, wire._safe_str(e), [])
            finally:
                sys.stdout, sys.stderr = real_out, real_err
                outputs, CAPTURE = CAPTURE.finish(), None
            watch.check(namespace)
            defined = [n for n in contract if callable(namespace.get(n))]
            channel.send({"op": "done", "seq": header.get("seq"), "outputs": outputs,
                          "defined": defined, "tamper": watch.take()})  # fmt: skip
        elif op == "call":
            sys.stdout, sys.stderr = sink, sink  # what the functions print during tests is dropped
            try:
                peer.serve(header, blobs)
            finally:
                sys.stdout, sys.stderr = real_out, real_err
        elif op == "report":
            channel.send({"op": "report", "tamper": watch.take()})
        else:
            return 0


if __name__ == "__main__":
    np.seterr(all="warn")
    sys.exit(main(sys.argv))
