"""Declarative wire description + the one generic parse/build engine.

A message body is described once as a tree of nodes (Prim, Enum, Struct, Array,
Switch, Pointer, Computed).  The same tree parses bytes into plain dicts and
builds bytes back from those dicts.  Pointers are u32 offsets from the start of
the message body; the builder lays pointed-to data out after the fixed part in
creation (breadth-first) order, which is how spice-common's marshaller flattens
its sub-marshallers, so build(parse(x)) == x for bodies real peers send.

Counts and lengths (spice.proto's `Rect rects[num_rects]`, `uint8 data[data_size]`) may be
left out when building: the builder derives them from the list or bytes they count, and
refuses (LengthError) a given one that contradicts them, rather than build bytes that do
not parse back.  Parsed dicts keep every field, counts included.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Iterator

END = None  # array length marker: "to the end of the message body"
EXTENT = "\0extent"  # key of the scope root that records how far pointed-to data reaches
TRAILING = "trailing"  # field for bytes a peer sent after everything described (kept for building)


class DecodeError(Exception):
    """The body does not match its description (truncated, bad pointer...)."""


class BuildError(Exception):
    """The fields given cannot be encoded."""


class LengthError(BuildError):
    """A count or length field contradicts the list or bytes given with it.

    `path` names the member that was being built, outermost first (filled in as the
    error passes up through the enclosing structs)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.reason}" if self.path else self.reason


class Node:
    min_size: int = 0

    def parse(self, buf: bytes, pos: int, scope: list[dict]) -> tuple[Any, int]:
        raise NotImplementedError

    def build(self, value: Any, out: bytearray, scope: list[dict], deferred: list) -> None:
        raise NotImplementedError


class Prim(Node):
    """A fixed-size little-endian integer; optional value<->name mapping."""

    def __init__(self, code: str, names: dict[int, str] | None = None, kind: str = "int"):
        self.code = code
        self.st = struct.Struct("<" + code)
        self.min_size = self.size = self.st.size
        self.names = names or {}
        self.values = {v: k for k, v in self.names.items()}
        self.kind = kind  # "int", "enum" or "flags"

    def named(self, names: dict[int, str], kind: str = "enum") -> "Prim":
        return Prim(self.code, names, kind)

    def decode(self, v: int) -> Any:
        return self.names.get(v, v) if self.kind == "enum" else v

    def encode(self, v: Any) -> int:
        if isinstance(v, str):
            try:
                return self.values[v]
            except KeyError:
                raise BuildError(f"unknown enum name {v!r}") from None
        return v

    def parse(self, buf, pos, scope):
        end = pos + self.size
        if end > len(buf):
            raise DecodeError(f"truncated at {pos}: need {self.size} bytes")
        return self.decode(self.st.unpack_from(buf, pos)[0]), end

    def build(self, value, out, scope, deferred):
        try:
            out += self.st.pack(self.encode(value))
        except struct.error as e:
            raise BuildError(f"{value!r}: {e}") from None


u8, u16, u32, u64 = Prim("B"), Prim("H"), Prim("I"), Prim("Q")
i8, i16, i32, i64 = Prim("b"), Prim("h"), Prim("i"), Prim("q")


def enum(prim: Prim, names: Iterable[str] | dict[int, str], start: int = 0) -> Prim:
    if not isinstance(names, dict):
        names = {i + start: n for i, n in enumerate(names)}
    return prim.named(names, "enum")


def flags(prim: Prim, names: Iterable[str] | dict[int, str]) -> Prim:
    """Flags stay ints on the wire and in fields; names map bit masks."""
    if not isinstance(names, dict):
        names = {1 << i: n for i, n in enumerate(names)}
    return prim.named(names, "flags")


def resolve(scope: list[dict], ref: str) -> Any:
    head, _, rest = ref.partition(".")
    for d in reversed(scope):
        if head in d:
            v = d[head]
            for part in rest.split(".") if rest else ():
                v = v[part]
            return v
    raise DecodeError(f"reference {ref!r} not found")


def _built_count(scope: list[dict], ref: str | Callable[[list[dict]], int]) -> Any:
    """The count or length the fields being built give for an array or byte field."""
    if scope and isinstance(ref, str):
        d = scope[-1]  # a sibling, nearly always: no walk through the scopes
        if ref in d:
            return d[ref]
    try:
        return ref(scope) if callable(ref) else resolve(scope, ref)
    except (DecodeError, KeyError, TypeError, IndexError):
        what = repr(ref) if isinstance(ref, str) else "that the length is computed from"
        raise BuildError(f"no field {what} to give the count") from None


def _count_ref(node: Any) -> str | None:
    """The sibling field that holds the element count / byte length of node, if any."""
    if isinstance(node, Pointer):
        node = node.target
    ref = node.count if isinstance(node, Array) else node.length if isinstance(node, Bytes) else None
    return ref if isinstance(ref, str) and "." not in ref else None


def merged_members(members: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Members of one dict: the struct's own and those its switches merge into it."""
    for name, node in members:
        if isinstance(node, Switch):
            for _, body in node.cases:
                yield from merged_members(body.members)
            if node.default is not None:
                yield from merged_members(node.default.members)
        else:
            yield name, node


class Bytes(Node):
    """Raw bytes: length is an int, a sibling field name, a callable(scope) or END."""

    def __init__(self, length: int | str | Callable[[list[dict]], int] | None = END):
        self.length = length
        self.min_size = length if isinstance(length, int) else 0

    def parse(self, buf, pos, scope):
        n = self.length
        if n is END:
            return bytes(buf[pos:]), len(buf)
        if isinstance(n, str):
            n = resolve(scope, n)
        elif callable(n):
            n = n(scope)
        end = pos + n
        if n < 0 or end > len(buf):
            raise DecodeError(f"byte array of {n} at {pos} overruns body of {len(buf)}")
        return bytes(buf[pos:end]), end

    def build(self, value, out, scope, deferred):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise BuildError(f"expected bytes, got {type(value).__name__}")
        n = self.length
        if n is not END:
            if not isinstance(n, int):
                n = _built_count(scope, n)
            if n != len(value):
                what = f"{self.length} is {n}" if isinstance(self.length, str) else f"the layout says {n}"
                raise LengthError(f"{what} but {len(value)} byte{'s are' if len(value) != 1 else ' is'} given")
        out += value


class Array(Node):
    """count elements of one node; count is an int, a field name or END."""

    def __init__(self, elem: Node, count: int | str | None):
        self.elem = elem
        self.count = count
        self.prim = elem if isinstance(elem, Prim) and elem.kind != "enum" else None

    def parse(self, buf, pos, scope):
        n = self.count
        remaining = len(buf) - pos
        esize = max(self.elem.min_size, 1)
        if n is END:
            n = remaining // esize
        elif isinstance(n, str):
            n = resolve(scope, n)
        if n < 0 or n * esize > remaining:
            raise DecodeError(f"array of {n} x {esize} B at {pos} overruns body of {len(buf)}")
        if self.prim is not None:
            st = struct.Struct(f"<{n}{self.prim.code}")
            return list(st.unpack_from(buf, pos)), pos + st.size
        out = []
        for _ in range(n):
            v, pos = self.elem.parse(buf, pos, scope)
            out.append(v)
        return out, pos

    def build(self, value, out, scope, deferred):
        n = self.count
        if n is not END:
            if isinstance(n, str):
                n = _built_count(scope, n)
            try:
                given = len(value)
            except TypeError:
                raise BuildError(f"expected a list, got {type(value).__name__}") from None
            if n != given:
                what = f"{self.count} is {n}" if isinstance(self.count, str) else f"the layout says {n}"
                raise LengthError(f"{what} but {len(value)} element{'s are' if len(value) != 1 else ' is'} given")
        if self.prim is not None:
            try:
                out += struct.pack(f"<{len(value)}{self.prim.code}", *value)
            except struct.error as e:
                raise BuildError(str(e)) from None
            return
        for v in value:
            self.elem.build(v, out, scope, deferred)


class Switch:
    """Members present depending on an earlier field.

    cases: list of (match, members); match is a set of ints (enum equality, or
    bit test when bits=True), or ("!", mask) for spice.proto's `case !X`.
    Members are merged into the enclosing struct's dict (spice.proto anon unions).
    """

    def __init__(self, ref: str, cases: list[tuple[Any, list[tuple[str, Node]]]],
                 default: list[tuple[str, Node]] | None = None, bits: bool = False,
                 on: Prim | None = None):
        self.ref = ref
        self.cases = [(m, Struct(members)) for m, members in cases]
        self.default = Struct(default) if default else None
        self.bits = bits
        self.on = on

    def choose(self, scope: list[dict]) -> "Struct | None":
        v = resolve(scope, self.ref)
        if isinstance(v, str) and self.on is not None:
            v = self.on.encode(v)
        for match, body in self.cases:
            if isinstance(match, tuple):
                if not (v & match[1]):
                    return body
            elif self.bits:
                if any(v & m for m in match):
                    return body
            elif v in match:
                return body
        return self.default


class Pointer(Node):
    """u32 offset from the start of the message body to a target; 0 = NULL."""

    min_size = 4

    def __init__(self, target: Node, nonnull: bool = False):
        self.target = target
        self.nonnull = nonnull

    def parse(self, buf, pos, scope):
        if pos + 4 > len(buf):
            raise DecodeError(f"truncated pointer at {pos}")
        off = int.from_bytes(buf[pos:pos + 4], "little")
        if off == 0:
            if self.nonnull:
                raise DecodeError(f"NULL in non-null pointer at {pos}")
            return None, pos + 4
        if off >= len(buf):
            raise DecodeError(f"pointer at {pos} to {off} is outside body of {len(buf)}")
        v, end = self.target.parse(buf, off, scope)
        extent = scope[0].get(EXTENT) if scope else None
        if extent is not None and end > extent[0]:
            extent[0] = end
        return v, pos + 4

    def build(self, value, out, scope, deferred):
        at = len(out)
        out += b"\0\0\0\0"
        if value is not None:
            deferred.append((at, self.target, value, list(scope)))


_RUN, _SWITCH, _STRUCT, _NODE = "run", "switch", "struct", "node"  # the kinds of a Struct's parse steps


class Struct(Node):
    """Ordered named members; runs of plain ints are read with one struct.Struct."""

    def __init__(self, members: list[tuple[str, Any]],
                 post_parse: Callable[[dict], None] | None = None):
        self.members = members
        self.post_parse = post_parse
        self.steps: list[tuple] = []
        run: list[tuple[str, Prim]] = []

        def flush() -> None:
            if run:
                st = struct.Struct("<" + "".join(p.code for _, p in run))
                # the hot loop of every parse: names zipped with one unpack and stored one by one (a
                # dict.update of the zip costs more below ~8 names), enum names looked up after; a run
                # of one int (half the runs of a dissect) keeps its name apart and is stored without a zip
                names = tuple(n for n, _ in run)
                enums = tuple((n, p.names) for n, p in run if p.kind == "enum")
                self.steps.append((_RUN, st, names, enums, names[0] if len(names) == 1 else None))
                run.clear()

        size = 0
        for name, node in members:
            if isinstance(node, Prim):
                run.append((name, node))
                size += node.size
            else:
                flush()
                kind = _SWITCH if isinstance(node, Switch) else _STRUCT if isinstance(node, Struct) else _NODE
                self.steps.append((kind, name, node))
                if isinstance(node, Node):
                    size += node.min_size
        flush()
        self.min_size = size
        self.derived = self._derived_counts()

    def _derived_counts(self) -> list[tuple[str, tuple[tuple[str, bool], ...]]]:
        """(count field, (member it counts, behind a pointer?)...) for every plain-int count
        this dict holds, so build can fill a count the caller leaves out (spice.proto's
        `rects[num_rects]`)."""
        merged = list(merged_members(self.members))
        ints = {name for name, node in merged if isinstance(node, Prim) and node.kind == "int"}
        users: dict[str, list[tuple[str, bool]]] = {}
        for name, node in merged:
            ref = _count_ref(node)
            user = (name, isinstance(node, Pointer))
            if ref in ints and user not in users.get(ref, ()):
                users.setdefault(ref, []).append(user)
        return [(ref, tuple(names)) for ref, names in users.items()]

    def _with_counts(self, value: dict) -> dict:
        """value with its missing counts filled from the lists/bytes given (a copy: the
        caller's dict stays as it was, so it can be built again with other contents).
        A NULL pointer counts as nothing (DstInfo's cert_subject_size 0 with no data)."""
        filled = None
        for ref, users in self.derived:
            if ref in value:
                continue
            n = None
            for name, pointer in users:
                v = value.get(name, ...)
                if isinstance(v, (list, tuple, bytes, bytearray, memoryview)):
                    n = len(v)
                    break
                if v is None and pointer:
                    n = 0
            if n is not None:
                if filled is None:
                    filled = dict(value)
                filled[ref] = n
        return value if filled is None else filled

    def parse(self, buf, pos, scope):
        d: dict = {}
        pos = self.parse_into(d, buf, pos, scope)
        return d, pos

    def parse_into(self, d: dict, buf, pos: int, scope: list[dict]) -> int:
        scope.append(d)
        end = len(buf)
        try:
            for step in self.steps:
                kind = step[0]
                if kind is _RUN:
                    st = step[1]
                    if pos + st.size > end:
                        raise DecodeError(f"truncated at {pos}: need {st.size} bytes, have {end - pos}")
                    if step[4] is not None:
                        d[step[4]] = st.unpack_from(buf, pos)[0]
                    else:
                        for name, v in zip(step[2], st.unpack_from(buf, pos)):
                            d[name] = v
                    for name, names in step[3]:
                        v = d[name]
                        d[name] = names.get(v, v)
                    pos += st.size
                elif kind is _SWITCH:
                    body = step[2].choose(scope)
                    if body is not None:
                        scope.pop()
                        try:
                            pos = body.parse_into(d, buf, pos, scope)
                        finally:
                            scope.append(d)
                elif kind is _STRUCT:
                    sub: dict = {}
                    d[step[1]] = sub
                    pos = step[2].parse_into(sub, buf, pos, scope)
                else:
                    d[step[1]], pos = step[2].parse(buf, pos, scope)
        finally:
            scope.pop()
        if self.post_parse is not None:
            self.post_parse(d)
        return pos

    def build(self, value, out, scope, deferred):
        if not isinstance(value, dict):
            raise BuildError(f"expected a dict, got {type(value).__name__}")
        if self.derived:
            value = self._with_counts(value)
        scope.append(value)
        try:
            for name, node in self.members:
                if isinstance(node, Switch):
                    body = node.choose(scope)
                    if body is not None:
                        scope.pop()
                        try:
                            body.build(value, out, scope, deferred)
                        finally:
                            scope.append(value)
                    continue
                try:
                    v = value[name]
                except KeyError:
                    raise BuildError(f"missing field {name!r}") from None
                try:
                    node.build(v, out, scope, deferred)
                except LengthError as e:
                    e.path.insert(0, name)
                    raise
        finally:
            scope.pop()


def parse_body(node: Struct, body: bytes) -> tuple[dict, str | None]:
    """Decode a whole body; returns (fields, error). Fields hold what was decoded."""
    d: dict = {}
    extent = [0]
    try:
        end = node.parse_into(d, body, 0, [{EXTENT: extent}])
    except (DecodeError, struct.error, KeyError, TypeError, IndexError, ValueError) as e:
        return d, f"{type(e).__name__}: {e}" if not isinstance(e, DecodeError) else str(e)
    end = max(end, extent[0])
    if end < len(body):
        # e.g. spice-server NUL-terminates NOTIFY text beyond message_len
        d[TRAILING] = bytes(body[end:])
    return d, None


def build_body(node: Struct, fields: dict) -> bytes:
    out = bytearray()
    deferred: list = []
    node.build(fields, out, [], deferred)
    i = 0
    while i < len(deferred):  # breadth-first, like the marshaller's sub-marshaller list
        at, target, value, scope = deferred[i]
        out[at:at + 4] = len(out).to_bytes(4, "little")
        target.build(value, out, scope, deferred)
        i += 1
    trailing = fields.get(TRAILING)
    if trailing:
        out += trailing
    return bytes(out)
