# Test helpers, read-only. Run this cell before the tests; you do not need to read it.
# Each check calls your function on fresh copies of its inputs, compares the result with an
# oracle in float64 (PyTorch, or finite differences) and, when they differ, looks for the
# mistakes students commonly make, so that the message tells you what to fix.
import traceback
import warnings

import numpy as np
import torch

torch.set_num_threads(1)  # the tests' tensors are tiny: more threads only add overhead


class CheckFailed(AssertionError):
    """What a check found wrong. Jupyter shows its message alone: the helpers' frames would
    only show this cell's code, not yours."""

    def _render_traceback_(self):  # IPython's hook for an exception's own traceback
        return [f"\x1b[31m✗ {self}\x1b[0m"]


_tc_WARNED = []  # what the student's code warned during this cell's last call (see _tc_call)


def _tc_fail(message):
    __tracebackhide__ = True
    if _tc_WARNED:  # the warnings belong to the message, not above it
        message += f" Your code warned: {'; '.join(dict.fromkeys(_tc_WARNED))}."
        _tc_WARNED.clear()
    raise CheckFailed(message) from None


def _tc_passed(name):
    """The line a test cell prints when its visible tests pass."""
    _tc_WARNED.clear()
    print(f"✓ {name}: visible tests passed (hidden tests run when graded)")


def _tc_todo(name):
    return f"{name} is not implemented yet: replace `raise NotImplementedError()` with your code."


def _tc_t(a):
    """A float64 torch tensor holding a copy of a numpy array."""
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _tc_describe(x):
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} values"
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"an array of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:120]


def _tc_shapes(args):
    def shape(v):
        if isinstance(v, (list, tuple, dict)):
            items = v.values() if isinstance(v, dict) else v
            return f"[{', '.join(shape(a) for a in items)}]"
        return str(tuple(v.shape)) if hasattr(v, "shape") else type(v).__name__

    kinds = (np.ndarray, torch.Tensor, list, tuple, dict)
    arrays = {k: v for k, v in args.items() if isinstance(v, kinds)}
    return ", ".join(f"{k} {shape(v)}" for k, v in arrays.items())


def _tc_copy(v):
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, list) and all(isinstance(a, np.ndarray) for a in v):
        return [a.copy() for a in v]
    if isinstance(v, dict) and all(isinstance(a, np.ndarray) for a in v.values()):
        return {k: a.copy() for k, a in v.items()}
    return v


def _tc_same(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(_tc_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tc_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return True


def _tc_frame(error):
    """The last frame of an exception's traceback in the notebook's code, or None."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)[1:]  # [0] is the helper's call
        if "site-packages" not in f.filename and "/lib/python" not in f.filename
    ]
    return frames[-1] if frames else None


def _tc_where(error):
    """Where in the notebook's code an exception was raised: ' (in f, at `line`)', or ''."""
    frame = _tc_frame(error)
    if frame is None:
        return ""
    return f" (in {frame.name}" + (f", at `{frame.line.strip()}`)" if frame.line else ")")


def _tc_matmul_hint(name, error):
    """The rule for the product that failed: forward rows times W.T, backward gradients times W."""
    frame = _tc_frame(error)
    line = (frame.line or "") if frame else ""
    backward = "backward" in name or name.endswith("grads")  # parameter_grads, rtrl_grads, ...
    if backward and (".T" in line or not line):
        return (
            " A matrix product has mismatched shapes. Weights are stored (out, in). Going"
            " backward, a gradient (B, out) times W (out, in) gives (B, in), with no .T:"
            " the .T belongs to the forward products only."
        )
    return (
        " A matrix product has mismatched shapes. Weights are stored (out, in), as in"
        " PyTorch: a batch of rows (B, in) times W.T gives (B, out); going backward, a"
        " gradient (B, out) times W gives (B, in)."
    )


def _tc_call(fn, args, mutable=(), note=""):
    """Call fn(*args.values()), on copies of the arrays except those named in `mutable`;
    report exceptions, and inputs changed in place."""
    __tracebackhide__ = True
    name = getattr(fn, "__name__", "your function")
    given = {k: v if k in mutable else _tc_copy(v) for k, v in args.items()}
    _tc_WARNED.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn(*given.values())
            finally:
                for w in caught[:3]:  # each warning's first sentence
                    first = str(w.message).split(". ")[0].rstrip(".")[:200]
                    _tc_WARNED.append(f"{w.category.__name__}: {first}")
    except NotImplementedError:
        _tc_fail(_tc_todo(name))
    except Exception as e:
        text = str(e)
        hint = ""
        if "matmul" in text or "not aligned" in text:
            hint = _tc_matmul_hint(name, e)
        elif "broadcast" in text:
            hint = (
                " Two arrays' shapes do not fit together:"
                " print the shapes of your intermediate arrays."
            )
        shapes = _tc_shapes(args)
        shapes = f" Its inputs had shapes {shapes}." if shapes else ""
        _tc_fail(f"{name} raised {type(e).__name__}: {text}{_tc_where(e)}.{shapes}{hint}{note}")
    for k, v in args.items():
        if k in mutable or given[k] is v:
            continue
        if not _tc_same(given[k], v):
            _tc_fail(
                f"{name} changed its input `{k}` in place. Leave inputs untouched and compute new "
                f"arrays (`a = a - m`, not `a -= m`)."
            )
    return out


def _tc_unpack(name, out, names):
    """out must be a tuple (or list) of len(names) values."""
    __tracebackhide__ = True
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        _tc_fail(
            f"{name} must return {len(names)} values, ({', '.join(names)}), in this order; "
            f"it returned {_tc_describe(out)}."
        )
    return out


def _tc_array(what, got, shape, dims=""):
    """got as a float64 array of the given shape, or a message saying what is wrong."""
    __tracebackhide__ = True
    if got is None:
        _tc_fail(f"{what} is None: did you forget a `return`?")
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        _tc_fail(f"{what} must be a numpy array of numbers, got {_tc_describe(got)}.")
    shape = tuple(shape)
    if got.shape != shape:
        note = ""
        if len(shape) > 1 and got.shape == shape[::-1]:
            note = " It looks transposed."
        _tc_fail(
            f"{what} has shape {got.shape}; expected {dims + ' = ' if dims else ''}{shape}.{note}"
        )
    return got


def _tc_scalar(what, got):
    """got as a Python float, or a message saying it is not a single number."""
    __tracebackhide__ = True
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    a = np.asarray(got)
    if got is None or a.size != 1 or not np.issubdtype(a.dtype, np.number):
        _tc_fail(f"{what} must be a single number (a float); got {_tc_describe(got)}.")
    return float(a.reshape(()))


def _tc_close(got, want, rtol=1e-6, atol=1e-9):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return False
    scale = float(np.abs(want).max()) if want.size else 0.0
    return bool(np.all(np.abs(got - want) <= atol + rtol * (np.abs(want) + 0.1 * scale)))


def _tc_compare(what, got, want, hints=(), oracle="the oracle", rtol=1e-6, atol=1e-9):
    """Fail unless got ~ want; if got matches a known mistake, name it."""
    __tracebackhide__ = True
    want = np.asarray(want, dtype=np.float64)
    if _tc_close(got, want, rtol, atol):
        return
    for candidate, message in hints:
        try:
            with np.errstate(all="ignore"):
                c = candidate()
        except Exception:
            continue
        if c is None:
            continue
        c = np.asarray(c, dtype=np.float64)
        if c.shape == np.shape(got) and (
            _tc_close(got, c, rtol, atol)
            or (
                np.array_equal(np.isnan(got), np.isnan(c))
                and np.isnan(c).any()
                and _tc_close(np.nan_to_num(got), np.nan_to_num(c), rtol, atol)
            )
        ):
            _tc_fail(f"{what} is wrong: {message}")
    got = np.asarray(got, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        _tc_fail(
            f"{what} contains NaN or inf where {oracle} gives finite values "
            f"(an overflow, or a log or a division of 0?)."
        )
    err = np.abs(got - want)
    i = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    where = f" at index {tuple(int(j) for j in i)}" if err.ndim else ""
    _tc_fail(
        f"{what} does not match {oracle}: the largest difference is {err.max():.3g}{where} "
        f"(got {got[i]:.6g}, expected {want[i]:.6g})."
    )
