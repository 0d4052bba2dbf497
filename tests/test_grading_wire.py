"""The wire between the tests and the student's process (grader.wire), in one process:
values keep their types, in-place changes and identities cross as in one interpreter, callbacks
work, exceptions keep their builtin types, and malformed messages are refused. Also the static
tampering scan (grader.scan.scan_source)."""

from __future__ import annotations

import json
import os
import struct
import threading

import numpy as np
import pytest
import torch
from exercise_harness import ASSIGNMENTS, read, source_path, strip_solution_markers

from grader import wire
from grader.scan import contract_names, scan_source


class Pair:
    """A grader-side peer and a student-side peer serving ``functions`` in a thread."""

    def __init__(self, functions: dict):
        a_r, b_w = os.pipe()
        b_r, a_w = os.pipe()
        self.grader = wire.Peer(wire.Channel(a_r, a_w), side=0)
        self.raw = wire.Channel(b_r, b_w)
        self.student = wire.Peer(self.raw, side=1, resolve=lambda name: self._find(functions, name))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.fds = (a_r, a_w, b_r, b_w)  # grader reads a_r, writes a_w; student the b ends

    @staticmethod
    def _find(functions, name):
        if name not in functions:
            raise NameError(f"name '{name}' is not defined")
        return functions[name]

    def _serve(self):
        while True:
            try:
                header, blobs = self.raw.recv()
            except (wire.PeerGone, OSError):
                return
            self.student.serve(header, blobs)

    def call(self, name, *args, **kwargs):
        return self.grader.call({"name": name}, args, kwargs)

    def close(self):
        a_r, a_w, b_r, b_w = self.fds
        os.close(a_w)  # the serving thread reads the end of its input and stops
        self.thread.join(5)
        for fd in (a_r, b_r, b_w):
            os.close(fd)


@pytest.fixture
def pair(request):
    p = Pair(request.param)
    yield p
    p.close()


def _identity(x):
    return x


def _copy(x):
    return x.copy()


VALUES = [  # what the assignments' contracts pass and return (wire.TYPES)
    None,
    True,
    7,
    2**70,
    -0.0,
    float("inf"),
    "text é",
    (1, (2.0, "x")),
    [1, [2, 3]],
    {"a": 1, 2: [3]},
    np.float64(0.25),
    np.int32(3),
    np.bool_(True),
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array(True),
    np.zeros((0, 3)),
]
# Off the allowlist: they arrive as stand-ins that only know their type's name.
OFF_THE_LIST = [1.5 + 2j, b"\x00\xff", np.dtype("float64"), slice(1, None, 2), Ellipsis,
                torch.float32, {1, 2}, np.array([[1 + 1j]])]  # fmt: skip


@pytest.mark.parametrize("pair", [{"id": _identity}], indirect=True)
@pytest.mark.parametrize("value", OFF_THE_LIST, ids=lambda v: type(v).__name__)
def test_only_the_allowlisted_types_travel(pair, value):
    back = pair.call("id", value)
    assert isinstance(back, wire.Opaque) and type(value).__name__ in repr(back), back
    assert len(wire.TYPES) <= 9


@pytest.mark.parametrize("pair", [{"id": _identity}], indirect=True)
@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_keep_their_types(pair, value):
    back = pair.call("id", value)
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back is value, "the caller's own array comes back"
    else:
        assert back == value or (back != back and value != value)
    nan = pair.call("id", float("nan"))
    assert nan != nan


@pytest.mark.parametrize("pair", [{"copy": _copy}], indirect=True)
def test_new_arrays_keep_dtype_shape_and_values(pair):
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array(2.5), np.ones((3, 0))):
        back = pair.call("copy", value)
        assert back is not value and back.dtype == value.dtype and np.array_equal(back, value)
        assert back.shape == value.shape
    assert pair.call("copy", np.arange(3, dtype=">i4")).tolist() == [0, 1, 2]


@pytest.mark.parametrize("pair", [{"id": _identity}], indirect=True)
def test_tensors_keep_dtype_requires_grad_and_grad(pair):
    t = torch.randn(3, dtype=torch.float64, requires_grad=True)
    t.grad = torch.ones(3, dtype=torch.float64)
    (back,) = pair.call("id", (t,))
    assert back is t, "an object that went and came back is the caller's object"
    u = pair.call("id", torch.arange(4, dtype=torch.int64) * 2)
    assert u.dtype == torch.int64 and u.tolist() == [0, 2, 4, 6]


def _scale_in_place(grads, c):
    for g in grads:
        g *= c


def _replace_entries(grads):
    grads[0] = grads[0] * 2


def _raise_after_change(grads):
    grads[1][0] = 99.0
    raise FloatingPointError("the norm is NaN")


def _returns_input(grads):
    return grads


@pytest.mark.parametrize(
    "pair",
    [{"scale": _scale_in_place, "replace": _replace_entries, "raise": _raise_after_change,
      "same": _returns_input}],
    indirect=True,
)  # fmt: skip
def test_in_place_changes_and_identities_cross(pair):
    grads = [np.ones(3), np.ones((2, 2))]
    refs = list(grads)
    pair.call("scale", grads, 0.5)
    assert all(a is b for a, b in zip(grads, refs, strict=True))
    assert np.all(grads[0] == 0.5) and np.all(grads[1] == 0.5)
    pair.call("replace", grads)
    assert grads[0] is not refs[0] and grads[1] is refs[1], "a new array in the list"
    assert np.all(grads[0] == 1.0) and np.all(refs[0] == 0.5)
    with pytest.raises(FloatingPointError, match="NaN"):
        pair.call("raise", grads)
    assert grads[1][0, 0] == 99.0, "changes made before raising are seen"
    assert pair.call("same", grads) is grads


def _numerical_gradient(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f(x)
        x[i] = old - eps
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("pair", [{"ng": _numerical_gradient}], indirect=True)
def test_callbacks_run_on_the_callers_side_with_shared_state(pair):
    seen = []
    x = np.array([[0.3, -0.2], [0.1, 0.7]])
    before = x.copy()

    def f(v):
        seen.append(v is x)  # the caller's own array, perturbed in place by the callee
        return float(np.sum(np.sin(v)))

    g = pair.call("ng", f, x)
    assert np.allclose(g, np.cos(before), atol=1e-8)
    assert len(seen) == 8 and all(seen)
    assert np.array_equal(x, before)


def _backward_into_params(model, xs):
    x = xs.detach().clone().requires_grad_(True)
    model(x)[0][-1].sum().backward()
    return x.grad.flatten(1).norm(dim=1)


def _autograd_grad(model, xs):
    x = xs.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0][-1].sum(), x)
    return g.flatten(1).norm(dim=1).numpy()


@pytest.mark.parametrize(
    "pair", [{"backward": _backward_into_params, "grad": _autograd_grad}], indirect=True
)
def test_torch_modules_travel_and_their_gradients_come_back(pair):
    torch.manual_seed(0)
    model = torch.nn.LSTM(3, 4, dtype=torch.float64)
    xs = torch.randn(5, 2, 3, dtype=torch.float64)
    want = _autograd_grad(model, xs)
    got = pair.call("grad", model, xs)
    assert np.allclose(got, want) and all(p.grad is None for p in model.parameters())
    got = pair.call("backward", model, xs)
    assert isinstance(got, torch.Tensor) and np.allclose(got.numpy(), want)
    assert all(p.grad is not None for p in model.parameters()), "backward() filled .grad"


class _Custom(ValueError):
    pass


def _raise(kind):
    raise {"nie": NotImplementedError(), "custom": _Custom("odd"), "exit": SystemExit(3),
           "linalg": np.linalg.LinAlgError("singular")}[kind]  # fmt: skip


def _opaque():
    return [object(), np.array([object()]), lambda: 1]


@pytest.mark.parametrize("pair", [{"raise": _raise, "opaque": _opaque}], indirect=True)
def test_exceptions_keep_builtin_types_and_nothing_else_crosses(pair):
    with pytest.raises(NotImplementedError):
        pair.call("raise", "nie")
    with pytest.raises(ValueError, match="odd") as e:
        pair.call("raise", "custom")
    assert type(e.value).__name__ == "_Custom" and type(e.value) is not _Custom
    with pytest.raises(ValueError, match="singular"):
        pair.call("raise", "linalg")
    with pytest.raises(RuntimeError, match="SystemExit"):
        pair.call("raise", "exit")
    obj, arr, fn = pair.call("opaque")
    assert isinstance(obj, wire.Opaque) and repr(obj) == "<object object>"
    assert isinstance(arr, wire.Opaque)
    assert isinstance(fn, wire.RemoteFunction)
    with pytest.raises(NameError):
        pair.call("no_such_function")


def _message(header: dict, blobs=()) -> bytes:
    text = json.dumps(header).encode()
    out = struct.pack("<II", len(text), len(blobs)) + text
    for b in blobs:
        out += struct.pack("<Q", len(b)) + b
    return out


BAD = {
    "not json": struct.pack("<II", 5, 0) + b"{nope",
    "object dtype": _message(
        {"op": "return", "seq": 1, "value": {"t": "ref", "id": 3},
         "objs": {"3": {"t": "nd", "dtype": "|O", "shape": [1], "b": 0}}}, [b"12345678"]),
    "size mismatch": _message(
        {"op": "return", "seq": 1, "value": {"t": "ref", "id": 3},
         "objs": {"3": {"t": "nd", "dtype": "<f8", "shape": [2], "b": 0}}}, [b"12345678"]),
    "unknown ref": _message({"op": "return", "seq": 1, "value": {"t": "ref", "id": 41}}),
    "unknown type": _message({"op": "return", "seq": 1, "value": {"t": "pickle", "v": "..."}}),
    "wrong reply": _message({"op": "done", "seq": 1}),
    "too large": struct.pack("<II", 2**31, 0),
}  # fmt: skip


@pytest.mark.parametrize("payload", BAD.values(), ids=BAD.keys())
def test_malformed_replies_are_refused(payload):
    a_r, b_w = os.pipe()
    b_r, a_w = os.pipe()
    grader = wire.Peer(wire.Channel(a_r, a_w), side=0)
    os.write(b_w, payload)
    try:
        with pytest.raises(wire.ProtocolError):
            grader.call({"name": "f"}, (), {})
    finally:
        for fd in (a_r, a_w, b_r, b_w):
            os.close(fd)


def test_exceptions_from_names():
    assert type(wire.exception_from({"type": "KeyboardInterrupt"})) is RuntimeError
    e = wire.exception_from({"type": "Weird", "mro": ["Weird", "object"], "message": "m"})
    assert type(e) is RuntimeError and "Weird: m" in str(e)


# ---------------------------------------------------------------------- the static scan
def test_scan_finds_patches_and_helper_redefinitions():
    src = """
import numpy as npx
from numpy import testing as nt
import torch, builtins, sys
npx.allclose = lambda *a: True
nt.assert_allclose = None
setattr(torch, "allclose", None)
builtins.isinstance = None
sys.modules["numpy"] = None
def _check_global_norm(*a):
    pass
_tc_fail = print
AssertionError = Exception
frame = sys._getframe(1)
"""
    found = scan_source(src)
    for text in [
        "patches numpy.allclose",
        "patches numpy.testing.assert_allclose",
        "patches torch.allclose (setattr)",
        "patches builtins.isinstance",
        "patches an entry of sys.modules",
        "redefines the test helper _check_global_norm",
        "redefines the test helper _tc_fail",
        "redefines AssertionError",
        "inspects the caller's frames (sys._getframe)",
    ]:
        assert text in found, (text, found)
    assert scan_source("%matplotlib inline\nnp.allclose = 1\n") == ["patches numpy.allclose"]
    assert scan_source("this is not python (") == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_scan_finds_nothing_in_the_reference_solutions(assignment):
    nb = read(source_path(assignment))
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("locked"):
            assert scan_source(strip_solution_markers(cell.source)) == [], cell.id
    solutions = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert contract_names(solutions), "the graded functions are found"


def _huge():
    return [0.5] * 2_000_000  # a 2-million-node header: refused, as a MemoryError


@pytest.mark.parametrize("pair", [{"huge": _huge}], indirect=True)
def test_results_too_large_to_check_are_errors(pair):
    with pytest.raises(MemoryError, match="too large"):
        pair.call("huge")
