"""The wire between the grader and a sandboxed student process: safe messages, shared objects.

The grader runs the tests; the student's functions run in another process (the sandbox). A test
calls ``rnn_forward(xs, ...)``: the arguments travel to the sandbox, the student's function runs
there, and the result travels back. Nothing the student's code does can reach the tests' own
namespace, their copies of numpy and torch, or the verdict: all the grader receives is data.

Both sides use this module (the sandbox imports it from a read-only copy; it needs numpy, and
torch only when tensors or modules travel). Design:

* **No pickle.** A message is a JSON header plus raw byte blobs. Values are encoded as tagged
  nodes: Python scalars, strings, tuples, numpy arrays and scalars of numeric dtypes, torch tensors,
  and ``torch.nn`` recurrent modules from an allowlist (rebuilt from their hyper-parameters). Any
  other object arrives as an :class:`Opaque` stand-in that only knows its type name. Decoding
  never imports or calls anything named in a message.
* **Shared mutable objects.** Tests check in-place semantics ("clip_grad_norm scales the caller's
  arrays", "numerical_gradient puts x back", "the list got new arrays"), so every list, dict, array,
  tensor and module that crosses gets an id, and *every* message carries the current contents of
  all of them. The receiver updates its own objects in place: identities on each side are kept
  (``refs[0] is mine[0]`` stays true or becomes false exactly as in one process).
* **Callbacks.** A function among the arguments (``numerical_gradient(f, x)``) becomes a stub on
  the other side; calling it sends a nested ``call`` message back, served before the reply.
* **Untrusted input.** Sizes, depth, dtypes and shapes are checked; a violation raises
  :class:`ProtocolError` (the grader then stops that sandbox).
"""

from __future__ import annotations

import builtins
import json
import os
import select
import struct
import time

import numpy as np

MAX_MESSAGE = 256 * 2**20  # bytes in one message
MAX_HEADER = 16 * 2**20  # bytes of JSON in one message (arrays travel as blobs, outside it)
MAX_REPLY = 64 * 2**20  # bytes in one message from the student's process (the grader refuses more)
MAX_DEPTH = 64
MAX_NODES = 1_000_000
HEADER = struct.Struct("<II")  # JSON length, number of blobs
BLOB = struct.Struct("<Q")
DTYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}
TORCH_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
# torch.nn modules that may travel, with the constructor arguments that rebuild them.
MODULES = {
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
            "dropout", "bidirectional"),
    "LSTM": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size"),
    "GRU": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
            "bidirectional"),
    "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity"),
    "LSTMCell": ("input_size", "hidden_size", "bias"),
    "GRUCell": ("input_size", "hidden_size", "bias"),
    "Linear": ("in_features", "out_features"),
}  # fmt: skip
EXCEPTION_TYPES = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


class PeerGone(Exception):
    """The other side closed its end (its process ended)."""


class Timeout(Exception):
    """No message arrived before the deadline."""


class Opaque:
    """Stands for an object of a type that cannot travel (only its type name does)."""

    def __init__(self, type_name: str):
        self.type_name = str(type_name)[:100]

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


class RemoteError(Exception):
    """Base of exceptions re-raised from the other side whose type is not a builtin."""


def _torch():
    import torch

    return torch


def _is_tensor(obj) -> bool:
    torch = _loaded_torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def _is_module(obj) -> bool:
    torch = _loaded_torch()
    return torch is not None and isinstance(obj, torch.nn.Module)


def _loaded_torch():
    import sys

    return sys.modules.get("torch") if "torch.nn" in sys.modules else None


def exception_from(info: dict) -> Exception:
    """An exception to raise here for the description ``info`` of one raised over there.

    Builtin exception types are kept (tests catch ``ValueError``, ``FloatingPointError``,
    ``NotImplementedError``); other types become a subclass of their nearest builtin base with the
    same name. ``SystemExit``, ``KeyboardInterrupt`` and other non-``Exception`` types never
    cross: they arrive as ``RuntimeError``.
    """
    name = str(info.get("type", "Exception"))[:100]
    message = str(info.get("message", ""))[:4000]
    mro = [str(n) for n in info.get("mro", [])][:50]
    if name in EXCEPTION_TYPES:
        return EXCEPTION_TYPES[name](message)
    base = next((EXCEPTION_TYPES[n] for n in mro if n in EXCEPTION_TYPES), None)
    if base is None:
        return RuntimeError(f"{name}: {message}" if message else name)
    if not name.isidentifier():
        name = "RemoteError"
    try:
        cls = type(name, (base, RemoteError), {"__module__": "student"})
        return cls(message)
    except TypeError:
        return base(message)


def describe_exception(e: BaseException) -> dict:
    return {
        "type": type(e).__name__,
        "mro": [c.__name__ for c in type(e).__mro__],
        "message": _safe_str(e)[:4000],
    }


def _safe_str(obj) -> str:
    try:
        return str(obj)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the wire
        return f"<{type(obj).__name__}>"


class Channel:
    """Length-prefixed messages over a pair of pipe ends (``rfd`` to read, ``wfd`` to write).

    ``deadline`` arguments are ``time.monotonic()`` values or None (wait forever).
    """

    def __init__(self, rfd: int, wfd: int, max_bytes: int = MAX_MESSAGE):
        self.rfd, self.wfd, self.max_bytes = rfd, wfd, max_bytes

    def _wait(self, fd, write: bool, deadline):
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], timeout)
            if r or w:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout()

    def _read(self, n: int, deadline) -> bytes:
        chunks, got = [], 0
        while got < n:
            self._wait(self.rfd, False, deadline)
            try:
                chunk = os.read(self.rfd, min(n - got, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise PeerGone()
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _write(self, data: bytes, deadline):
        view = memoryview(data)
        while view:
            self._wait(self.wfd, True, deadline)
            try:
                n = os.write(self.wfd, view[: 1 << 16])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError) as e:
                raise PeerGone() from e
            view = view[n:]

    def send(self, header: dict, blobs=(), deadline=None):
        text = json.dumps(header, allow_nan=True).encode()
        if len(text) > MAX_HEADER:
            raise ProtocolError(f"message header too large ({len(text) >> 20} MiB)")
        parts = [HEADER.pack(len(text), len(blobs)), text]
        for b in blobs:
            parts += [BLOB.pack(len(b)), bytes(b)]
        self._write(b"".join(parts), deadline)

    def recv(self, deadline=None) -> tuple[dict, list[bytes]]:
        size, count = HEADER.unpack(self._read(HEADER.size, deadline))
        total = size
        if size > min(self.max_bytes, MAX_HEADER) or count > MAX_NODES:
            raise ProtocolError(f"message too large ({size} bytes, {count} blobs)")
        try:
            header = json.loads(self._read(size, deadline))
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, too many digits
            raise ProtocolError(f"message header is not JSON: {e}") from None
        if not isinstance(header, dict):
            raise ProtocolError("message header is not an object")
        blobs = []
        for _ in range(count):
            (n,) = BLOB.unpack(self._read(BLOB.size, deadline))
            total += n
            if total > self.max_bytes:
                raise ProtocolError(f"message larger than {self.max_bytes} bytes")
            blobs.append(self._read(n, deadline))
        return header, blobs


class RemoteFunction:
    """A function of the other side; calling it sends a ``call`` message (see :class:`Peer`)."""

    def __init__(self, peer: Peer, fid: int, name: str):
        self._peer, self._fid = peer, fid
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self._peer.call({"id": self._fid}, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__}>"


class Peer:
    """One side of the wire: encodes and decodes values, makes and serves calls.

    ``side`` is 0 for the grader, 1 for the sandbox (ids of new objects do not collide).
    ``resolve(target)`` returns the local callable for a ``call`` message's target (a name or the
    id of a function that crossed); ``deadline()`` the deadline of the current wait;
    ``after_call`` runs after each served call (the sandbox checks for tampering there).
    """

    def __init__(self, channel: Channel, side: int, resolve=None, deadline=None, after_call=None):
        self.channel, self.side = channel, side
        self.resolve = resolve or (lambda target: None)
        self.deadline = deadline or (lambda: None)
        self.after_call = after_call
        self.depth = 0
        self.seq = 0
        self._reset()

    # ------------------------------------------------------------------ registry
    def _reset(self):
        self.objs: dict[int, object] = {}
        self.ids: dict[int, int] = {}
        self.counter = self.side

    def _register(self, obj, oid: int | None = None) -> int:
        if oid is None:
            self.counter += 2
            oid = self.counter
        self.objs[oid] = obj
        self.ids[id(obj)] = oid
        return oid

    def _forget(self, keep: set):
        """Drop the objects registered since ``keep`` was the registry (a result not sent)."""
        for oid in set(self.objs) - keep:
            self.ids.pop(id(self.objs.pop(oid)), None)

    # ------------------------------------------------------------------ encoding
    def encode(self, value) -> tuple[dict, dict, list[bytes]]:
        """(value node, {id: contents of every shared object}, blobs)."""
        blobs: list[bytes] = []
        pending: list[int] = []
        node = self._node(value, blobs, pending, 0)
        contents: dict[str, dict] = {}
        done: set[int] = set()
        queue = list(self.objs)  # all shared objects travel, changed or not
        while queue or pending:
            oid = (queue or pending).pop()
            if oid in done:
                continue
            done.add(oid)
            obj = self.objs[oid]
            if isinstance(obj, RemoteFunction) or callable(obj) and not _is_module(obj):
                continue
            contents[str(oid)] = self._contents(obj, blobs, pending)
        return node, contents, blobs

    def _array(self, a: np.ndarray, blobs) -> dict | None:
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dtype.str not in DTYPES:
            return None
        a = np.asarray(a, dtype=dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        blobs.append(a.tobytes())
        return {"dtype": dtype.str, "shape": list(a.shape), "b": len(blobs) - 1}

    def _node(self, v, blobs, pending, depth):
        if depth > MAX_DEPTH:
            return {"t": "opaque", "type": "deeply nested object"}
        if isinstance(v, np.generic):  # before float: np.float64 is a float
            arr = self._array(np.asarray(v), blobs)
            return {"t": "nps", **arr} if arr else {"t": "opaque", "type": type(v).__name__}
        if v is None or isinstance(v, bool):
            return {"t": "py", "v": v}
        if isinstance(v, str):
            return {"t": "py", "v": str(v)}
        if isinstance(v, int):
            return {"t": "py", "v": int(v)}
        if isinstance(v, float):
            return {"t": "f", "v": float(v)}
        if isinstance(v, complex):
            return {"t": "c", "re": v.real, "im": v.imag}
        if isinstance(v, bytes):
            blobs.append(bytes(v))
            return {"t": "bytes", "b": len(blobs) - 1}
        if isinstance(v, np.dtype):
            return (
                {"t": "npdtype", "v": v.str}
                if v.str in DTYPES
                else {"t": "opaque", "type": "dtype"}
            )
        if isinstance(v, type) and v in (np.float64, np.float32, np.int64, np.int32, np.bool_):
            return {"t": "nptype", "v": np.dtype(v).str}
        if isinstance(v, (slice, range)):
            items = [self._node(x, blobs, pending, depth + 1) for x in (v.start, v.stop, v.step)]
            return {"t": type(v).__name__, "items": items}
        if v is Ellipsis:
            return {"t": "ellipsis"}
        torch = _loaded_torch()
        if torch is not None:
            if isinstance(v, torch.dtype):
                name = str(v).removeprefix("torch.")
                return (
                    {"t": "tdtype", "v": name}
                    if name in TORCH_DTYPES
                    else {"t": "opaque", "type": "dtype"}
                )
            if isinstance(v, torch.Size):
                return {"t": "tsize", "v": [int(x) for x in v]}
        if isinstance(v, tuple):
            return {"t": "tuple", "items": [self._node(x, blobs, pending, depth + 1) for x in v]}
        if isinstance(v, (set, frozenset)):
            return {
                "t": "set",
                "items": [self._node(x, blobs, pending, depth + 1) for x in v][:MAX_NODES],
            }
        travels = _is_module(v) and type(v).__name__ in MODULES
        travels = travels and type(v).__module__.startswith("torch.nn")
        shared = isinstance(v, (list, dict, np.ndarray)) or _is_tensor(v) or travels
        if shared:
            oid = self.ids.get(id(v))
            if oid is None or self.objs.get(oid) is not v:
                oid = self._register(v)
                pending.append(oid)
            return {"t": "ref", "id": oid}
        if isinstance(v, RemoteFunction) and v._peer is self:
            return {"t": "fn", "id": v._fid, "name": v.__name__, "home": 1 - self.side}
        if callable(v) and not isinstance(v, type):
            oid = self.ids.get(id(v))
            if oid is None or self.objs.get(oid) is not v:
                oid = self._register(v)
            name = getattr(v, "__name__", "function")
            return {"t": "fn", "id": oid, "name": str(name)[:100], "home": self.side}
        return {"t": "opaque", "type": type(v).__name__}

    def _contents(self, obj, blobs, pending) -> dict:
        if isinstance(obj, list):
            return {"t": "list", "items": [self._node(x, blobs, pending, 1) for x in obj]}
        if isinstance(obj, dict):
            items = [
                [self._node(k, blobs, pending, 1), self._node(v, blobs, pending, 1)]
                for k, v in obj.items()
            ]
            return {"t": "dict", "items": items}
        if isinstance(obj, np.ndarray):
            arr = self._array(obj, blobs)
            if arr is None:
                return {"t": "opaque", "type": f"ndarray of {obj.dtype}"}
            return {"t": "nd", "w": bool(obj.flags.writeable), **arr}
        if _is_tensor(obj):
            name = str(obj.dtype).removeprefix("torch.")
            if name not in TORCH_DTYPES or obj.layout != _torch().strided:
                return {"t": "opaque", "type": f"tensor of {obj.dtype}"}
            data = self._array(obj.detach().cpu().resolve_conj().numpy(), blobs)
            grad = obj.grad if obj.is_leaf else None
            return {
                "t": "tensor",
                "dtype": name,
                "data": data,
                "rg": bool(obj.requires_grad),
                "grad": self._node(grad, blobs, pending, 1),
            }
        if _is_module(obj):
            cls = type(obj).__name__
            init = {k: getattr(obj, k) for k in MODULES[cls] if hasattr(obj, k)}
            init = {k: v for k, v in init.items() if isinstance(v, (bool, int, float, str))}
            params = [[n, self._node(p, blobs, pending, 1)] for n, p in obj.named_parameters()]
            first = next(iter(obj.parameters()), None)
            dtype = str(first.dtype).removeprefix("torch.") if first is not None else "float32"
            return {"t": "module", "cls": cls, "init": init, "dtype": dtype, "params": params,
                    "training": bool(obj.training)}  # fmt: skip
        return {"t": "opaque", "type": type(obj).__name__}

    # ------------------------------------------------------------------ decoding
    def decode(self, node, contents: dict, blobs: list[bytes]):
        """Apply ``contents`` to the shared objects (creating new ones), then decode ``node``."""
        if not isinstance(contents, dict) or len(contents) > MAX_NODES:
            raise ProtocolError("bad contents")
        self._budget = MAX_NODES
        fresh = []
        # Modules first: they register their own parameters under the ids that came with them.
        order = sorted(
            contents.items(),
            key=lambda kv: not (isinstance(kv[1], dict) and kv[1].get("t") == "module"),
        )
        for key, c in order:
            oid = self._oid(key)
            if oid not in self.objs:
                self._register(self._new(c, blobs), oid)
                fresh.append(oid)
        for key, c in contents.items():
            oid = self._oid(key)
            self._apply(self.objs[oid], c, blobs, oid in fresh)
        return self._value(node, blobs, 0)

    def _oid(self, key) -> int:
        try:
            oid = int(key)
        except (TypeError, ValueError):
            raise ProtocolError(f"bad object id {key!r}") from None
        return oid

    def _blob(self, blobs, index) -> bytes:
        if not isinstance(index, int) or not 0 <= index < len(blobs):
            raise ProtocolError("bad blob index")
        return blobs[index]

    def _ndarray(self, c: dict, blobs) -> np.ndarray:
        dtype = DTYPES.get(c.get("dtype"))
        shape = c.get("shape")
        if dtype is None or not isinstance(shape, list) or len(shape) > 32:
            raise ProtocolError("bad array")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError("bad array shape")
        data = self._blob(blobs, c.get("b"))
        if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize != len(data):
            raise ProtocolError("array size does not match its data")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def _new(self, c, blobs):
        if not isinstance(c, dict):
            raise ProtocolError("bad object")
        t = c.get("t")
        if t == "list":
            return []
        if t == "dict":
            return {}
        if t == "nd":
            return self._ndarray(c, blobs)
        if t == "tensor":
            torch = _torch()
            if c.get("dtype") not in TORCH_DTYPES or not isinstance(c.get("data"), dict):
                raise ProtocolError("bad tensor")
            return torch.from_numpy(self._ndarray(c["data"], blobs)).to(getattr(torch, c["dtype"]))
        if t == "module":
            return self._new_module(c)
        if t == "opaque":
            return Opaque(c.get("type", "object"))
        raise ProtocolError(f"bad object type {t!r}")

    def _new_module(self, c):
        torch = _torch()
        cls = c.get("cls")
        init = c.get("init")
        if cls not in MODULES or not isinstance(init, dict) or c.get("dtype") not in TORCH_DTYPES:
            raise ProtocolError("bad module")
        kwargs = {
            k: v
            for k, v in init.items()
            if k in MODULES[cls] and isinstance(v, (bool, int, float, str))
        }
        try:
            module = getattr(torch.nn, cls)(**kwargs, dtype=getattr(torch, c["dtype"]))
        except Exception as e:  # noqa: BLE001 - hostile hyper-parameters
            raise ProtocolError(f"cannot build torch.nn.{cls}: {e}") from None
        params = c.get("params")
        if not isinstance(params, list):
            raise ProtocolError("bad module parameters")
        own = dict(module.named_parameters())
        for item in params:
            if not (isinstance(item, list) and len(item) == 2 and item[0] in own):
                raise ProtocolError("bad module parameter")
            ref = item[1]
            if isinstance(ref, dict) and ref.get("t") == "ref":
                oid = self._oid(ref.get("id"))
                if oid not in self.objs:
                    self._register(own[item[0]], oid)
        return module

    def _apply(self, obj, c, blobs, fresh: bool):
        t = c.get("t")
        if t == "list" and isinstance(obj, list):
            items = [self._value(x, blobs, 1) for x in self._items(c)]
            if len(items) != len(obj) or any(a is not b for a, b in zip(items, obj, strict=True)):
                obj[:] = items
        elif t == "dict" and isinstance(obj, dict):
            pairs = []
            for pair in self._items(c):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ProtocolError("bad dict item")
                key = self._value(pair[0], blobs, 1)
                try:
                    hash(key)
                except TypeError:
                    raise ProtocolError("unhashable dict key") from None
                pairs.append((key, self._value(pair[1], blobs, 1)))
            new = dict(pairs)
            if new.keys() != obj.keys() or any(new[k] is not obj[k] for k in new):
                obj.clear()
                obj.update(new)
        elif t == "nd" and isinstance(obj, np.ndarray):
            if not fresh:
                new = self._ndarray(c, blobs)
                if new.shape == obj.shape and not np.array_equal(
                    new, obj, equal_nan=new.dtype.kind in "fc"
                ):
                    flag = obj.flags.writeable
                    try:
                        obj.flags.writeable = True
                        np.copyto(obj, new, casting="unsafe")
                    except ValueError:
                        pass  # a view of a read-only array: leave it
                    finally:
                        obj.flags.writeable = flag
            try:
                obj.flags.writeable = bool(c.get("w", True))
            except ValueError:
                pass
        elif t == "tensor" and _is_tensor(obj):
            self._apply_tensor(obj, c, blobs, fresh)
        elif t == "module" and _is_module(obj):
            obj.train(bool(c.get("training", True)))
            for item in c.get("params", []):
                if isinstance(item, list) and len(item) == 2:
                    self._value(item[1], blobs, 1)  # the parameters are shared tensors
        elif t == "opaque":
            pass
        else:
            raise ProtocolError(f"contents of type {t!r} do not fit the object")

    def _apply_tensor(self, obj, c, blobs, fresh):
        torch = _torch()
        if not fresh:
            data = self._ndarray(c.get("data") or {}, blobs)
            new = torch.from_numpy(data)
            if tuple(new.shape) == tuple(obj.shape):
                with torch.no_grad():
                    if not torch.equal(obj.detach().cpu().to(new.dtype), new):
                        obj.copy_(new.to(obj.dtype))
        grad = self._value(c.get("grad"), blobs, 1)
        rg = bool(c.get("rg", False))
        if obj.is_leaf:
            try:
                if obj.requires_grad != rg:
                    obj.requires_grad_(rg)
                if grad is None or _is_tensor(grad):
                    if obj.grad is not grad:
                        obj.grad = grad
            except (RuntimeError, TypeError):
                pass  # a gradient of another shape or dtype: torch refuses, so would the original

    def _items(self, c) -> list:
        items = c.get("items")
        if not isinstance(items, list):
            raise ProtocolError("bad items")
        self._budget -= len(items)
        if self._budget < 0:
            raise ProtocolError("too many values")
        return items

    def _value(self, node, blobs, depth):
        if depth > MAX_DEPTH + 2:
            raise ProtocolError("nested too deeply")
        if not isinstance(node, dict):
            raise ProtocolError("bad value")
        t = node.get("t")
        if t == "py":
            v = node.get("v")
            if not (v is None or isinstance(v, (bool, int, str))):
                raise ProtocolError("bad scalar")
            return v
        if t == "f":
            v = node.get("v")
            if not isinstance(v, (int, float)):
                raise ProtocolError("bad float")
            return float(v)
        if t == "c":
            return complex(float(node.get("re", 0.0)), float(node.get("im", 0.0)))
        if t == "bytes":
            return bytes(self._blob(blobs, node.get("b")))
        if t == "nps":
            return self._ndarray(node, blobs)[()]
        if t in ("npdtype", "nptype"):
            dtype = DTYPES.get(node.get("v"))
            if dtype is None:
                raise ProtocolError("bad dtype")
            return dtype if t == "npdtype" else dtype.type
        if t in ("slice", "range"):
            items = [self._value(x, blobs, depth + 1) for x in self._items(node)]
            if len(items) != 3 or not all(x is None or isinstance(x, int) for x in items):
                raise ProtocolError("bad slice")
            if t == "slice":
                return slice(*items)
            return range(items[0], items[1], items[2] or 1)
        if t == "ellipsis":
            return Ellipsis
        if t == "tdtype":
            if node.get("v") not in TORCH_DTYPES:
                raise ProtocolError("bad torch dtype")
            return getattr(_torch(), node["v"])
        if t == "tsize":
            v = node.get("v")
            if not isinstance(v, list) or not all(isinstance(x, int) for x in v):
                raise ProtocolError("bad size")
            return _torch().Size(v)
        if t == "tuple":
            return tuple(self._value(x, blobs, depth + 1) for x in self._items(node))
        if t == "set":
            try:
                return {self._value(x, blobs, depth + 1) for x in self._items(node)}
            except TypeError:
                raise ProtocolError("unhashable set item") from None
        if t == "ref":
            oid = self._oid(node.get("id"))
            if oid not in self.objs:
                raise ProtocolError(f"unknown object {oid}")
            return self.objs[oid]
        if t == "fn":
            oid = self._oid(node.get("id"))
            if node.get("home") == self.side:  # one of ours coming back
                if oid not in self.objs or not callable(self.objs[oid]):
                    raise ProtocolError(f"unknown function {oid}")
                return self.objs[oid]
            if oid not in self.objs:
                self._register(
                    RemoteFunction(self, oid, str(node.get("name", "function"))[:100]), oid
                )
            return self.objs[oid]
        if t == "opaque":
            return Opaque(node.get("type", "object"))
        raise ProtocolError(f"bad value type {t!r}")

    # ------------------------------------------------------------------ calls
    def call(self, target: dict, args=(), kwargs=None):
        """Call ``target`` (``{"name": ...}`` or ``{"id": ...}``) over there; wait for the result,
        serving the calls it makes back meanwhile."""
        self.depth += 1
        try:
            self.seq += 1
            seq = self.seq
            node, contents, blobs = self.encode((tuple(args), dict(kwargs or {})))
            self.channel.send(
                {"op": "call", "seq": seq, "target": target, "args": node, "objs": contents},
                blobs,
                deadline=self.deadline(),
            )
            while True:
                header, blobs = self.channel.recv(deadline=self.deadline())
                op = header.get("op")
                if op == "call":
                    self.serve(header, blobs)
                    continue
                if op != "return" or header.get("seq") != seq:
                    raise ProtocolError(f"expected the reply to call {seq}, got {op!r}")
                value = self.decode(
                    header.get("value", {"t": "py", "v": None}), header.get("objs", {}), blobs
                )
                if "error" in header:
                    error = header["error"]
                    raise exception_from(error if isinstance(error, dict) else {})
                return value
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._reset()

    def _target(self, target):
        """The local callable a call names: a function that crossed (by id) or, through
        ``resolve``, a name."""
        if isinstance(target, dict) and "id" in target:
            fn = self.objs.get(self._oid(target["id"]))
            if fn is None or isinstance(fn, RemoteFunction) or not callable(fn) or _is_module(fn):
                raise ProtocolError("call of an unknown function")
            return fn
        if isinstance(target, dict) and isinstance(target.get("name"), str):
            return self.resolve(target["name"])
        raise ProtocolError("bad call target")

    def serve(self, header: dict, blobs):
        """Run the local function a ``call`` message names and send back its result."""
        self.depth += 1
        try:
            seq = header.get("seq")
            reply: dict = {"op": "return", "seq": seq}
            try:
                args, kwargs = self.decode(header.get("args"), header.get("objs", {}), blobs)
                if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                    raise ProtocolError("bad arguments")
                if not all(isinstance(k, str) for k in kwargs):
                    raise ProtocolError("bad keyword arguments")
                fn = self._target(header.get("target"))
                result = fn(*args, **kwargs)
            except ProtocolError:
                raise
            except BaseException as e:  # noqa: BLE001 - any failure of the function is its result
                result = None
                reply["error"] = describe_exception(e)
            if self.after_call is not None:
                self.after_call()
            before = set(self.objs)
            try:
                node, contents, blobs = self.encode(result)
                size = sum(len(b) for b in blobs)
                if size > MAX_REPLY // 2:
                    raise ProtocolError(f"{size >> 20} MiB of data")
                self.channel.send({**reply, "value": node, "objs": contents}, blobs,
                                  deadline=self.deadline())  # fmt: skip
            except ProtocolError as e:  # e.g. ten million floats: too large to be checked
                self._forget(before)
                node, contents, blobs = self.encode(None)
                message = f"the result is too large to be checked ({e})"
                reply["error"] = {"type": "MemoryError", "mro": ["MemoryError"], "message": message}
                self.channel.send({**reply, "value": node, "objs": contents}, blobs,
                                  deadline=self.deadline())  # fmt: skip
            except Exception as e:  # noqa: BLE001 - e.g. a tensor that cannot be read
                self._forget(before)
                node, contents, blobs = self.encode(None)
                reply["error"] = describe_exception(e)
                self.channel.send({**reply, "value": node, "objs": contents}, blobs,
                                  deadline=self.deadline())  # fmt: skip
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._reset()
