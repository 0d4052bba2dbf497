"""nbgrader's execution with the tests and the student's code in separate processes.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` preprocessor (``nbgrader_config.py``).
The read-only cells (tests, helpers, given code) run here, from the gradebook's source; the
student's cells run in a sandbox (:mod:`grader.sandbox`), and the contract's functions are
stubs that call into it (:mod:`grader.wire`). A process that dies is restarted and the cells that
had run are replayed. Every event goes into a report that ``make grade`` turns into the CSV's
status; a sandbox that cannot start fails the submission. GRADING.md has the whole design.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import time
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, List, Unicode

from grader import wire
from grader.limits import DEFAULTS, Limits, parse_size
from grader.outputs import clean_outputs, run_here
from grader.sandbox import Sandbox, SandboxError
from grader.scan import contract_names, module_aliases, scan_source


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class StudentFunction:
    """The tests' view of one of the student's functions: calls run in the sandbox."""

    def __init__(self, run: NotebookRun, name: str):
        self._run, self.__name__, self.__qualname__ = run, name, name

    def __call__(self, *args, **kwargs):
        return self._run.call_student(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__}>"


class NotebookRun:
    """Execute one notebook: the tests here, the student's code in a sandbox."""

    def __init__(self, nb, trusted: dict, both: set, contract: list, limits: Limits,
                 submission: Path | None, max_restarts: int):  # fmt: skip
        self.nb, self.trusted, self.both, self.contract, self.limits = (
            nb,
            trusted,
            both,
            contract,
            limits,
        )
        self.submission, self.max_restarts = submission, max_restarts
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.box: Sandbox | None = None
        self.history: list[str] = []  # sources run in the sandbox, replayed after a restart
        self.events, self.tampering, self.notes, self.starts = [], [], [], 0
        self.cell_deadline = self.nb_deadline = None
        self.dead: str | None = None  # why the student's code cannot run any more
        self.cell_id = "?"

    # -- events
    def event(self, kind: str, text: str):
        self.events.append({"kind": kind, "cell": self.cell_id, "text": text})

    def tamper(self, items):
        new = [str(item)[:200] for item in items] if isinstance(items, list) else []
        self.tampering += [t for t in dict.fromkeys(new) if t not in self.tampering]

    # -- the sandbox
    def _stop(self):
        if self.box is not None:
            self.box.kill()
            self.box = None

    def _start(self) -> bool:
        """Make sure a sandbox with the student's state is running; False if impossible."""
        while self.box is None or not self.box.alive():
            if self.dead:
                return False
            self._stop()
            if self.starts > self.max_restarts:
                self.dead = f"the code was stopped {self.starts} times; the rest was not run"
                self.event("stopped", self.dead)
                return False
            if time.monotonic() >= self.nb_deadline:
                self._out_of_time()
                return False
            self.starts += 1
            self.box = box = Sandbox(self.limits, self.submission, lambda: self.cell_deadline)
            box.start(
                {"op": "init", "max_output": self.limits.max_output, "contract": self.contract}
            )
            for i, source in enumerate(list(self.history)):  # replay, outputs dropped
                deadline = min(time.monotonic() + self.limits.cell_timeout, self.nb_deadline)
                try:
                    reply = box.request({"op": "exec", "source": source}, deadline)
                    self._defined(reply)
                except (wire.Timeout, wire.PeerGone, wire.ProtocolError) as e:
                    self.history.pop(i)  # non-deterministic: it worked the first time
                    why = f"replaying a cell after a restart failed ({type(e).__name__})"
                    self.event("stopped", why)
                    self._stop()
                    break
        return True

    def _out_of_time(self):
        if not self.dead:
            limit = self.limits.notebook_timeout
            self.dead = f"the notebook's time limit ({limit:g} s) was reached"
            self.event("notebook_timeout", self.dead)
            self._stop()

    def _failure(self, e: Exception, what: str) -> str:
        """Stop the sandbox after ``e``; record and return what happened, in words."""
        if isinstance(e, wire.Timeout):
            if self.nb_deadline is not None and time.monotonic() >= self.nb_deadline:
                self._out_of_time()
                text = f"{what} was stopped: {self.dead}"
            else:
                limit = self.limits.cell_timeout
                text = f"{what} ran longer than the {limit:g} s limit per cell and was stopped"
                self.event("timeout", text)
        elif isinstance(e, wire.PeerGone):
            why = self.box.exit_description() if self.box else "it ended"
            text = f"the process running {what} ended: {why}"
            self.event("ended", text)
            if "exited with code" in why:
                self.tamper([f"ended its own process ({why.split(' (')[0].removeprefix('it ')})"])
        else:
            text = f"the process running {what} broke the grading protocol ({e})"
            self.event("protocol", text)
            self.tamper(["sent malformed messages to the grader"])
        self._stop()
        return text

    def _defined(self, reply: dict):
        defined = reply.get("defined") if isinstance(reply.get("defined"), list) else []
        for name in self.contract:
            if name in defined:
                self.ns[name] = StudentFunction(self, name)
            else:
                self.ns.pop(name, None)

    def _ready(self) -> bool:
        """A sandbox with the student's state, started if needed; False if there cannot be one."""
        if self.dead or time.monotonic() >= self.nb_deadline:
            self._out_of_time()
            return False
        try:
            return self._start()
        except SandboxError as e:  # the preprocessor fails the submission (never a silent 0)
            self.dead = f"the sandbox could not start: {e}"
            self.event("sandbox", self.dead)
            return False

    # -- cells
    def run_student(self, cell, source: str, show: bool = True):
        if not self._ready():
            if show:
                cell.outputs = [
                    new_output("stream", name="stdout", text=f"[not run: {self.dead}]\n")
                ]
            return
        self.cell_deadline = min(time.monotonic() + self.limits.cell_timeout, self.nb_deadline)
        try:
            reply = self.box.request({"op": "exec", "source": source}, self.cell_deadline)
            if reply.get("op") != "done":
                raise wire.ProtocolError(f"unexpected reply {reply.get('op')!r}")
        except (wire.Timeout, wire.PeerGone, wire.ProtocolError) as e:
            text = self._failure(e, f"cell {self.cell_id}")
            if show:
                cell.outputs = [
                    new_output("error", ename="CellStopped", evalue=text, traceback=[text])
                ]
            return
        self.history.append(source)
        self._defined(reply)
        self.tamper(reply.get("tamper"))
        outputs = clean_outputs(reply.get("outputs"), self.limits.max_output)
        if any(o.output_type == "error" and o.ename == "MemoryError" for o in outputs):
            self._memory(f"cell {self.cell_id}")
        if show:
            cell.outputs = outputs
            if re.search(r"not shown\]|output cut", json.dumps(outputs)):
                self.notes.append(
                    f"outputs of cell {self.cell_id} cut to {self.limits.max_output} characters"
                )

    def _memory(self, where: str):
        gib = self.limits.memory / 2**30
        self.event("memory", f"{where} ran out of memory (the limit is {gib:g} GiB): MemoryError")

    def call_student(self, name: str, args, kwargs):
        """A test calls the student's ``name``: run it in the sandbox, return its result here."""
        if not self.dead and time.monotonic() >= self.cell_deadline:
            raise TimeoutError(f"{name} was not run: the cell's time limit was reached")
        if not self._ready():
            raise RuntimeError(f"{name} could not be run: {self.dead}")
        try:
            return self.box.peer.call({"name": name}, args, kwargs)
        except MemoryError:
            self._memory(name)
            raise
        except (wire.Timeout, wire.PeerGone, wire.ProtocolError) as e:
            error = TimeoutError if isinstance(e, wire.Timeout) else RuntimeError
            raise error(self._failure(e, name)) from None

    def run_trusted(self, cell, source: str):
        self.cell_deadline = min(time.monotonic() + self.limits.cell_timeout, self.nb_deadline)
        here = self.submission if self.submission and self.submission.is_dir() else None
        # in the notebook's folder, as in Jupyter: the files it reads lie there (grader.job._stage)
        with contextlib.chdir(here) if here else contextlib.nullcontext():
            name, limit = f"<cell {self.cell_id}>", self.limits.max_output
            cell.outputs = run_here(source, self.ns, name, limit)

    def execute(self):
        self.nb_deadline = time.monotonic() + self.limits.notebook_timeout
        own = [
            c.source for c in self.nb.cells if c.cell_type == "code" and _gid(c) not in self.trusted
        ]
        self.aliases = module_aliases(own)
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                continue
            cell.outputs = []
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            self.cell_id = gid or cell.get("id", "?")
            if gid in self.trusted:
                source = self.trusted[gid]
                if gid in self.both:
                    self.run_student(cell, source, show=False)
                if time.monotonic() >= self.nb_deadline:
                    self._out_of_time()
                    cell.outputs = [
                        new_output("error", ename="NotRun", evalue=self.dead, traceback=[self.dead])
                    ]
                    continue
                self.run_trusted(cell, source)
            else:
                found = scan_source(cell.source, self.aliases)
                self.tamper([f"{t} (cell {self.cell_id})" for t in found])
                self.run_student(cell, cell.source)
        if self.box is not None and self.box.alive():
            with contextlib.suppress(wire.Timeout, wire.PeerGone, wire.ProtocolError):
                self.tamper(self.box.request({"op": "report"}, time.monotonic() + 10).get("tamper"))
        self._stop()


class SandboxedExecute(NbGraderPreprocessor):
    """nbgrader preprocessor: execute a submission with the tests outside the student's process."""

    # the defaults are grader.limits.DEFAULTS; make grade sets them from its options
    cell_timeout = Float(DEFAULTS.cell_timeout, help="seconds per cell").tag(config=True)
    notebook_timeout = Float(DEFAULTS.notebook_timeout, help="seconds per notebook").tag(
        config=True
    )
    memory = Unicode(str(DEFAULTS.memory), help="bytes, or a size like 2G").tag(config=True)
    max_output = Integer(DEFAULTS.max_output, help="characters kept per output").tag(config=True)
    sandbox = Bool(True, help="bubblewrap isolation (False: SANDBOX=off, unsafe)").tag(config=True)
    tests_only_cells = List(["checks"], help="read-only cells only the tests need").tag(config=True)
    max_restarts = Integer(3, help="restarts of the student's process per notebook").tag(
        config=True
    )
    report_dir = Unicode("", help="where to write <student>/<assignment>/<nb>.json").tag(
        config=True
    )

    def limits(self) -> Limits:
        return DEFAULTS.but(
            memory=parse_size(self.memory),
            cell_timeout=self.cell_timeout,
            notebook_timeout=self.notebook_timeout,
            max_output=self.max_output,
            sandbox=self.sandbox,
        )

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            cells = notebook.source_cells
            trusted = {c.name: c.source for c in cells if c.locked and c.cell_type == "code"}
            points = {c.name: float(c.max_score) for c in notebook.grade_cells}
            solutions = [c.name for c in notebook.solution_cells]
            sources = {c.name: c.source for c in notebook.source_cells}
        tests = {gid for gid in trusted if points.get(gid, 0) > 0}
        both = {gid for gid in trusted if gid not in tests and gid not in self.tests_only_cells}
        contract = contract_names([sources[s] for s in solutions if s in sources])
        path = resources.get("metadata", {}).get("path")
        start = time.monotonic()
        run = NotebookRun(nb, trusted, both, contract, self.limits(),
                          Path(path) if path else None, self.max_restarts)  # fmt: skip
        try:
            run.execute()
        finally:
            run._stop()
        broken = [e["text"] for e in run.events if e["kind"] == "sandbox"]
        if broken:
            # Never a silent zero: the submission fails, nbgrader logs it and exits non-zero.
            self.log.error("%s/%s: %s", info["student"], info["notebook"], broken[0])
            raise SandboxError(f"{broken[0]}; nothing was graded")
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            cell.execution_count = i + 1
        if self.report_dir:
            report = {"events": run.events, "tampering": run.tampering, "notes": run.notes,
                      "starts": run.starts, "seconds": time.monotonic() - start,
                      "sandbox": "bubblewrap" if self.sandbox else "off"}  # fmt: skip
            out = Path(self.report_dir) / info["student"] / info["assignment"]
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{info['notebook']}.json").write_text(json.dumps(report, indent=1))
        return nb, resources
