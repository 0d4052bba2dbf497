"""The wire between the grader and a sandboxed student process: safe messages, shared objects.

The tests run in the grader; a test's call of a student's function sends the arguments to the
sandbox and brings the result back. A message is a JSON header plus raw byte blobs, never
pickle: only the kinds of values in :data:`TYPES` travel (what the assignments' contracts pass
and return); any other object arrives as an :class:`Opaque` stand-in, and decoding never imports
or calls anything named in a message. Every list, dict, array, tensor and module that crosses is
shared: each message carries the current contents of all of them and the receiver updates its
own objects in place, so in-place changes and identities are as in one process. A function
among the arguments becomes a stub whose calls travel back. Sizes, depth, dtypes and shapes are
checked; a violation raises :class:`ProtocolError`. Both sides import this file (the sandbox a
read-only copy of it alone).
"""

from __future__ import annotations

import builtins
import json
import os
import select
import struct
import sys
import time

import numpy as np

# What may travel: node tag -> the values it carries.
TYPES = {
    "py": "None, bool, int, float, str",
    "tuple": "tuple",
    "list": "list (shared)",
    "dict": "dict (shared)",
    "nd": "numpy array of a numeric dtype (shared)",
    "nps": "numpy scalar of a numeric dtype",
    "tensor": "torch tensor of a numeric dtype, with requires_grad and grad (shared)",
    "module": "torch.nn.RNN, LSTM or GRU, rebuilt from its hyper-parameters (shared)",
    "fn": "function (a callback: calls travel back)",
}
MAX_MESSAGE = 256 * 2**20  # bytes in one message
MAX_HEADER = 16 * 2**20  # bytes of JSON in one message (arrays travel as blobs, outside it)
MAX_REPLY = 64 * 2**20  # bytes in one message from the student's process (the grader refuses more)
MAX_DEPTH = 64
MAX_NODES = 1_000_000
HEADER, BLOB = struct.Struct("<II"), struct.Struct("<Q")  # (JSON length, blobs), blob length
NUMERIC = ("bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32", "float64")
DTYPES = {np.dtype(t).str: np.dtype(t) for t in (*NUMERIC, "uint16", "uint32", "uint64")}
MODULES = {  # torch.nn modules that may travel, with the arguments that rebuild them
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first"),
    "LSTM": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "proj_size"),
    "GRU": ("input_size", "hidden_size", "num_layers", "bias", "batch_first"),
}
EXCEPTIONS = {
    n: o for n, o in vars(builtins).items() if isinstance(o, type) and issubclass(o, Exception)
}


ProtocolError = type("ProtocolError", (Exception,), {"__doc__": "Not a valid message."})
PeerGone = type("PeerGone", (Exception,), {"__doc__": "The other side's process ended."})
Timeout = type("Timeout", (Exception,), {"__doc__": "No message before the deadline."})
RemoteError = type("RemoteError", (Exception,), {"__doc__": "Base of non-builtin remote errors."})


class Opaque:
    """Stands for an object of a type that cannot travel (only its type name does)."""

    def __init__(self, type_name: str):
        self.type_name = str(type_name)[:100]

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


def _torch():
    """torch, if this process has loaded it (a message never makes it import anything)."""
    return sys.modules.get("torch") if "torch.nn" in sys.modules else None


def _is(obj, kind: str) -> bool:
    t = _torch()
    return t is not None and isinstance(obj, t.Tensor if kind == "tensor" else t.nn.Module)


def safe_str(obj) -> str:
    try:
        return str(obj)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the wire
        return f"<{type(obj).__name__}>"


def describe_exception(e: BaseException) -> dict:
    mro = [c.__name__ for c in type(e).__mro__]
    return {"type": type(e).__name__, "mro": mro, "message": safe_str(e)[:4000]}


def exception_from(info: dict) -> Exception:
    """An exception to raise here for one raised over there: builtin types are kept (tests catch
    ``ValueError``, ``FloatingPointError``); others become a subclass of their nearest builtin
    base with the same name; ``SystemExit`` and ``KeyboardInterrupt`` arrive as RuntimeError."""
    name = str(info.get("type", "Exception"))[:100]
    message = str(info.get("message", ""))[:4000]
    if name in EXCEPTIONS:
        return EXCEPTIONS[name](message)
    bases = [EXCEPTIONS[n] for n in map(str, info.get("mro", [])[:50]) if n in EXCEPTIONS]
    if not bases:
        return RuntimeError(f"{name}: {message}" if message else name)
    try:
        cls = type(name if name.isidentifier() else "RemoteError", (bases[0], RemoteError), {})
        return cls(message)
    except TypeError:
        return bases[0](message)


class Channel:
    """Length-prefixed messages over two pipe ends; ``deadline``: a ``time.monotonic()`` value or
    None (wait forever)."""

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

    def send(self, header: dict, blobs=(), deadline=None):
        text = json.dumps(header, allow_nan=True).encode()
        if len(text) > MAX_HEADER:
            raise ProtocolError(f"message header too large ({len(text) >> 20} MiB)")
        parts = [HEADER.pack(len(text), len(blobs)), text]
        for b in blobs:
            parts += [BLOB.pack(len(b)), bytes(b)]
        view = memoryview(b"".join(parts))
        while view:
            self._wait(self.wfd, True, deadline)
            try:
                view = view[os.write(self.wfd, view[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError) as e:
                raise PeerGone() from e

    def recv(self, deadline=None) -> tuple[dict, list[bytes]]:
        size, count = HEADER.unpack(self._read(HEADER.size, deadline))
        if size > min(self.max_bytes, MAX_HEADER) or count > MAX_NODES:
            raise ProtocolError(f"message too large ({size} bytes, {count} blobs)")
        try:
            header = json.loads(self._read(size, deadline))
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, too many digits
            raise ProtocolError(f"message header is not JSON: {e}") from None
        if not isinstance(header, dict):
            raise ProtocolError("message header is not an object")
        blobs, total = [], size
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


class Codec:
    """Values to message nodes and back, and the registry of shared objects (see the module)."""

    side = 0

    def _reset(self):
        self.objs: dict[int, object] = {}
        self.ids: dict[int, int] = {}
        self.counter = self.side

    def _register(self, obj, oid: int | None = None) -> int:
        if oid is None:
            self.counter += 2
            oid = self.counter
        self.objs[oid], self.ids[id(obj)] = obj, oid
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
        queue = list(self.objs)  # all shared objects travel, changed or not
        while queue or pending:
            oid = (queue or pending).pop()
            obj = self.objs[oid]
            if str(oid) in contents or callable(obj) and not _is(obj, "module"):
                continue
            contents[str(oid)] = self._contents(obj, blobs, pending)
        return node, contents, blobs

    def _array(self, a: np.ndarray, blobs) -> dict | None:
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dtype.str not in DTYPES:
            return None
        blobs.append(np.asarray(a, dtype=dtype, order="C").tobytes())  # keeps 0-d arrays 0-d
        return {"dtype": dtype.str, "shape": list(a.shape), "b": len(blobs) - 1}

    def _shared(self, v) -> bool:
        module = _is(v, "module") and type(v).__name__ in MODULES
        module = module and type(v).__module__.startswith("torch.nn")
        return isinstance(v, (list, dict, np.ndarray)) or _is(v, "tensor") or module

    def _node(self, v, blobs, pending, depth):
        if depth > MAX_DEPTH:
            return {"t": "opaque", "type": "deeply nested object"}
        if isinstance(v, np.generic):  # before float: np.float64 is a float
            arr = self._array(np.asarray(v), blobs)
            return {"t": "nps", **arr} if arr else {"t": "opaque", "type": type(v).__name__}
        if v is None or type(v) in (bool, int, float, str):
            return {"t": "py", "v": v}
        if isinstance(v, (bool, int, float, str)):  # subclasses travel as their base
            return {"t": "py", "v": next(t for t in (bool, int, float, str) if isinstance(v, t))(v)}
        if isinstance(v, tuple):
            return {"t": "tuple", "items": [self._node(x, blobs, pending, depth + 1) for x in v]}
        if self._shared(v):
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
            name = str(getattr(v, "__name__", "function"))[:100]
            return {"t": "fn", "id": oid, "name": name, "home": self.side}
        return {"t": "opaque", "type": v.type_name if isinstance(v, Opaque) else type(v).__name__}

    def _contents(self, obj, blobs, pending) -> dict:
        node = lambda x: self._node(x, blobs, pending, 1)  # noqa: E731
        if isinstance(obj, list):
            return {"t": "list", "items": [node(x) for x in obj]}
        if isinstance(obj, dict):
            return {"t": "dict", "items": [[node(k), node(v)] for k, v in obj.items()]}
        if isinstance(obj, np.ndarray):
            arr = self._array(obj, blobs)
            if arr is None:
                return {"t": "opaque", "type": f"ndarray of {obj.dtype}"}
            return {"t": "nd", "w": bool(obj.flags.writeable), **arr}
        if _is(obj, "tensor"):
            name = str(obj.dtype).removeprefix("torch.")
            if name not in NUMERIC or obj.layout != _torch().strided:
                return {"t": "opaque", "type": f"tensor of {obj.dtype}"}
            data = self._array(obj.detach().cpu().resolve_conj().numpy(), blobs)
            grad = node(obj.grad if obj.is_leaf else None)
            return {"t": "tensor", "dtype": name, "data": data, "rg": obj.requires_grad,
                    "grad": grad}  # fmt: skip
        cls = type(obj).__name__
        if cls not in MODULES:
            return {"t": "opaque", "type": getattr(obj, "type_name", cls)}
        init = {k: getattr(obj, k) for k in MODULES[cls] if hasattr(obj, k)}
        params = [[n, node(p)] for n, p in obj.named_parameters()]
        first = next(iter(obj.parameters()), None)
        dtype = str(first.dtype).removeprefix("torch.") if first is not None else "float32"
        return {"t": "module", "cls": cls, "init": init, "dtype": dtype, "params": params,
                "training": bool(obj.training)}  # fmt: skip

    # ------------------------------------------------------------------ decoding
    def decode(self, node, contents: dict, blobs: list[bytes]):
        """Apply ``contents`` to the shared objects (creating new ones), then decode ``node``."""
        if not isinstance(contents, dict) or len(contents) > MAX_NODES:
            raise ProtocolError("bad contents")
        self._budget = MAX_NODES
        fresh = set()
        # Modules first: they register their own parameters under the ids that came with them.
        is_module = lambda kv: isinstance(kv[1], dict) and kv[1].get("t") == "module"  # noqa: E731
        modules_first = sorted(contents.items(), key=lambda kv: not is_module(kv))
        try:
            for key, c in modules_first:
                if self._oid(key) not in self.objs:
                    fresh.add(self._register(self._new(c, blobs), self._oid(key)))
            for key, c in contents.items():
                self._apply(self.objs[self._oid(key)], c, blobs, self._oid(key) in fresh)
            return self._value(node if node is not None else {"t": "py", "v": None}, blobs, 0)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise ProtocolError(f"malformed values: {type(e).__name__}") from None

    def _oid(self, key) -> int:
        try:
            return int(key)
        except (TypeError, ValueError):
            raise ProtocolError(f"bad object id {key!r}") from None

    def _ndarray(self, c: dict, blobs) -> np.ndarray:
        """A new array (a shape that does not fit the data is a ValueError: a protocol error)."""
        dtype, shape = DTYPES.get(c.get("dtype")), c.get("shape")
        if dtype is None or not isinstance(shape, list) or not isinstance(c.get("b"), int):
            raise ProtocolError("bad array")
        return np.frombuffer(blobs[c["b"]], dtype=dtype).reshape(shape).copy()

    def _new(self, c, blobs):
        t = c.get("t") if isinstance(c, dict) else None
        if t in ("list", "dict"):
            return [] if t == "list" else {}
        if t == "nd":
            return self._ndarray(c, blobs)
        if t == "tensor" and _torch() is not None:
            if c.get("dtype") not in NUMERIC:  # never getattr(torch, <anything>)
                raise ProtocolError("bad tensor")
            data = self._ndarray(c["data"], blobs)
            return _torch().from_numpy(data).to(getattr(_torch(), c["dtype"]))
        if t == "module" and _torch() is not None:
            return self._new_module(c)
        if t == "opaque":
            return Opaque(c.get("type", "object"))
        raise ProtocolError(f"bad object type {t!r}")

    def _new_module(self, c):
        torch, cls, init = _torch(), c.get("cls"), c.get("init")
        if cls not in MODULES or not isinstance(init, dict) or c.get("dtype") not in NUMERIC:
            raise ProtocolError("bad module")
        kwargs = {
            k: v for k, v in init.items() if k in MODULES[cls] and type(v) in (bool, int, str)
        }
        try:
            module = getattr(torch.nn, cls)(**kwargs, dtype=getattr(torch, c["dtype"]))
        except Exception as e:  # noqa: BLE001 - hostile hyper-parameters
            raise ProtocolError(f"cannot build torch.nn.{cls}: {e}") from None
        own = dict(module.named_parameters())
        params = c.get("params")
        for item in params if isinstance(params, list) else [None]:
            if not (isinstance(item, list) and len(item) == 2 and item[0] in own):
                raise ProtocolError("bad module parameter")
            if isinstance(item[1], dict) and item[1].get("t") == "ref":
                if self._oid(item[1].get("id")) not in self.objs:
                    self._register(own[item[0]], self._oid(item[1].get("id")))
        return module

    def _apply(self, obj, c, blobs, fresh: bool):
        t = c.get("t")
        value = lambda x: self._value(x, blobs, 1)  # noqa: E731
        if t == "list" and isinstance(obj, list):
            items = [value(x) for x in self._items(c)]
            if len(items) != len(obj) or any(a is not b for a, b in zip(items, obj, strict=True)):
                obj[:] = items
        elif t == "dict" and isinstance(obj, dict):
            new = {value(k): value(v) for k, v in self._items(c)}  # bad pairs: TypeError
            if new.keys() != obj.keys() or any(new[k] is not obj[k] for k in new):
                obj.clear()
                obj.update(new)
        elif t == "nd" and isinstance(obj, np.ndarray):
            self._apply_array(obj, c, blobs, fresh)
        elif t == "tensor" and _is(obj, "tensor"):
            self._apply_tensor(obj, c, blobs, fresh)
        elif t == "module" and _is(obj, "module"):
            obj.train(bool(c.get("training", True)))
            for item in c.get("params", []):
                value(item[1])  # the parameters are shared tensors
        elif t != "opaque":
            raise ProtocolError(f"contents of type {t!r} do not fit the object")

    def _apply_array(self, obj, c, blobs, fresh):
        if not fresh:
            new = self._ndarray(c, blobs)
            if new.shape == obj.shape and not np.array_equal(
                new, obj, equal_nan=new.dtype.kind == "f"
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

    def _apply_tensor(self, obj, c, blobs, fresh):
        torch = _torch()
        if not fresh:
            new = torch.from_numpy(self._ndarray(c.get("data") or {}, blobs))
            if tuple(new.shape) == tuple(obj.shape):
                with torch.no_grad():
                    if not torch.equal(obj.detach().cpu().to(new.dtype), new):
                        obj.copy_(new.to(obj.dtype))
        grad, rg = self._value(c.get("grad"), blobs, 1), bool(c.get("rg", False))
        if obj.is_leaf:
            try:
                if obj.requires_grad != rg:
                    obj.requires_grad_(rg)
                if (grad is None or _is(grad, "tensor")) and obj.grad is not grad:
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
        t = node.get("t") if isinstance(node, dict) else None
        if depth > MAX_DEPTH + 2 or t is None:
            raise ProtocolError("bad value, or nested too deeply")
        if t == "py":
            if not (node.get("v") is None or type(node.get("v")) in (bool, int, float, str)):
                raise ProtocolError("bad scalar")
            return node["v"]
        if t == "nps":
            return self._ndarray(node, blobs)[()]
        if t == "tuple":
            return tuple(self._value(x, blobs, depth + 1) for x in self._items(node))
        if t == "opaque":
            return Opaque(node.get("type", "object"))
        oid = self._oid(node.get("id"))
        if t == "ref" and oid in self.objs:
            return self.objs[oid]
        if t == "fn" and node.get("home") == self.side:  # one of ours coming back
            if oid not in self.objs or not callable(self.objs[oid]):
                raise ProtocolError(f"unknown function {oid}")
            return self.objs[oid]
        if t == "fn":
            if oid not in self.objs:
                name = str(node.get("name", "function"))[:100]
                self._register(RemoteFunction(self, oid, name), oid)
            return self.objs[oid]
        raise ProtocolError(f"bad value {t!r} (unknown type or object {oid})")


class Peer(Codec):
    """One side of the wire: makes and serves calls (values are encoded by :class:`Codec`).

    ``side`` is 0 for the grader, 1 for the sandbox (ids of new objects do not collide).
    ``resolve(name)`` returns the local callable a ``call`` names; ``deadline()`` the deadline of
    the current wait; ``after_call`` runs after each served call.
    """

    def __init__(self, channel: Channel, side: int, resolve=None, deadline=None, after_call=None):
        self.channel, self.side = channel, side
        self.resolve = resolve or (lambda target: None)
        self.deadline = deadline or (lambda: None)
        self.after_call = after_call
        self.depth = self.seq = 0
        self._reset()

    def _send(self, header: dict, value, cap: int = MAX_MESSAGE):
        node, contents, blobs = self.encode(value)
        if sum(len(b) for b in blobs) > cap:
            raise ProtocolError(f"{sum(len(b) for b in blobs) >> 20} MiB of data")
        self.channel.send({**header, "value": node, "objs": contents}, blobs, self.deadline())

    def call(self, target: dict, args=(), kwargs=None):
        """Call ``target`` (``{"name": ...}`` or ``{"id": ...}``) over there; wait for the result,
        serving the calls it makes back meanwhile."""
        self.depth += 1
        try:
            self.seq += 1
            seq = self.seq
            self._send({"op": "call", "seq": seq, "target": target}, (tuple(args), kwargs or {}))
            while True:
                header, blobs = self.channel.recv(deadline=self.deadline())
                if header.get("op") == "call":
                    self.serve(header, blobs)
                    continue
                if header.get("op") != "return" or header.get("seq") != seq:
                    raise ProtocolError(
                        f"expected the reply to call {seq}, got {header.get('op')!r}"
                    )
                value = self.decode(header.get("value"), header.get("objs", {}), blobs)
                if "error" in header:
                    error = header["error"]
                    raise exception_from(error if isinstance(error, dict) else {})
                return value
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._reset()

    def _target(self, target):
        """The local callable a call names: a function that crossed (by id) or a name."""
        if isinstance(target, dict) and "id" in target:
            fn = self.objs.get(self._oid(target["id"]))
            if (
                fn is None
                or isinstance(fn, RemoteFunction)
                or not callable(fn)
                or _is(fn, "module")
            ):
                raise ProtocolError("call of an unknown function")
            return fn
        if isinstance(target, dict) and isinstance(target.get("name"), str):
            return self.resolve(target["name"])
        raise ProtocolError("bad call target")

    def serve(self, header: dict, blobs):
        """Run the local function a ``call`` message names and send back its result."""
        self.depth += 1
        try:
            reply: dict = {"op": "return", "seq": header.get("seq")}
            try:
                args, kwargs = self.decode(header.get("value"), header.get("objs", {}), blobs)
                if not (isinstance(args, tuple) and isinstance(kwargs, dict)):
                    raise ProtocolError("bad arguments")
                if not all(isinstance(k, str) for k in kwargs):
                    raise ProtocolError("bad keyword arguments")
                result = self._target(header.get("target"))(*args, **kwargs)
            except ProtocolError:
                raise
            except BaseException as e:  # noqa: BLE001 - any failure of the function is its result
                result, reply["error"] = None, describe_exception(e)
            if self.after_call is not None:
                self.after_call()
            before = set(self.objs)
            try:
                self._send(reply, result, MAX_REPLY // 2)
            except Exception as e:  # noqa: BLE001 - e.g. ten million floats, an unreadable tensor
                self._forget(before)
                reply["error"] = describe_exception(e)
                if isinstance(e, ProtocolError):
                    message = f"the result is too large to be checked ({e})"
                    reply["error"] = {
                        "type": "MemoryError",
                        "mro": ["MemoryError"],
                        "message": message,
                    }
                self._send(reply, None)
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._reset()
