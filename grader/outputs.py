"""Outputs on the grader's side: the student's, checked and cut again (the sandbox is not
trusted), and those of the read-only cells, which run here."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import warnings

from nbformat.v4 import new_output

from grader.wire import safe_str

BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def _error(ename, evalue, traceback) -> dict:
    return new_output(
        "error", ename=str(ename)[:200], evalue=str(evalue)[:4000], traceback=traceback
    )


def _clean(out: dict, limit: int) -> dict | None:
    kind = out.get("output_type")
    if kind == "stream":
        name = "stderr" if out.get("name") == "stderr" else "stdout"
        return new_output("stream", name=name, text=str(out.get("text", ""))[: limit + 200])
    if kind == "error":
        tb = out.get("traceback") if isinstance(out.get("traceback"), list) else []
        tb = [str(line)[:limit] for line in tb[:200]]
        while sum(len(line) for line in tb) > limit and len(tb) > 1:
            tb.pop(0)
        return _error(out.get("ename", "Error"), out.get("evalue", ""), tb)
    if kind not in ("execute_result", "display_data"):
        return None
    data = out.get("data") if isinstance(out.get("data"), dict) else {}
    images = {m: data.get(m) for m in ("image/png", "image/jpeg")}
    kept = {m: v for m, v in images.items() if isinstance(v, str) and len(v) <= limit}
    kept = {m: v for m, v in kept.items() if BASE64.match(v)}
    if isinstance(data.get("text/plain"), str):
        kept["text/plain"] = data["text/plain"][: limit + 200]
    extra = {"execution_count": None} if kind == "execute_result" else {}
    return new_output(kind, data=kept, **extra) if kept else None


def clean_outputs(outputs, limit: int) -> list:
    """The sandbox's outputs of one cell, as nbformat outputs within ``limit`` characters each."""
    if not isinstance(outputs, list):
        return []
    clean = [_clean(out, limit) for out in outputs[:64] if isinstance(out, dict)]  # runner: 50
    return [out for out in clean if out is not None]


class Capped(io.TextIOBase):
    def __init__(self, limit):
        self.limit, self.parts, self.size = limit, [], 0

    def write(self, text):
        if self.size < self.limit:
            self.parts.append(text[: self.limit - self.size])
        self.size += len(text)
        return len(text)

    def text(self):
        return "".join(self.parts) + ("\n[... output cut]" if self.size > self.limit else "")


def run_here(source: str, ns: dict, name: str, limit: int) -> list:
    """Run a read-only cell in ``ns`` (this process) as a kernel would; its outputs. A failing
    test shows only its error line: the frames would show the cell's (hidden) code."""
    out, outputs, value = Capped(limit), [], None
    try:
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(Capped(0)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(tree, name, "exec"), ns)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), name, "eval"), ns)
    except Exception as e:  # noqa: BLE001 - a failing test is an error output, as in a kernel
        message = safe_str(e)[:4000]
        outputs.append(_error(type(e).__name__, message, [f"{type(e).__name__}: {message}"]))
    if out.size:
        outputs.insert(0, new_output("stream", name="stdout", text=out.text()))
    if value is not None:  # only set when the cell ran to its end
        data = {"text/plain": repr(value)[:limit]}
        outputs.append(new_output("execute_result", data=data, execution_count=None))
    return outputs
