"""ROS 2 bags (rosbag2, mcap or sqlite3 storage) read and written through `rosbags`: no ROS.

Reading is lazy and tolerant of damage. A bag that `ros2 bag record` left behind when it
was killed has no mcap summary/footer (or a sqlite3 file cut mid-page), and a copy can be
truncated or corrupted anywhere. `BagReader.messages()` yields every message it can read
in order and stops at the first unreadable record; `BagReader.error` then says where and
why, so a caller can still use (publish, score) everything before it. When rosbags cannot
open a storage file at all (missing footer, malformed database), the file is salvaged by a
forward scan: mcap record by record from the start, sqlite3 row by row in insertion order.

Message types: rosbags' ROS 2 Kilted typestore plus automot_msgs, registered from the
package's own .msg files (share/automot_msgs/msg of an install, or src/automot_msgs/msg),
plus any type a bag carries a definition for.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

AUTOMOT_MSG_TYPES = ("MetaAction", "Waypoint", "DrivingPlan", "ContextInfo")
STORAGES = ("mcap", "sqlite3")
_STORAGE_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
MCAP_MAGIC = b"\x89MCAP0\r\n"


class BagError(Exception):
    """A bag that cannot be read at all (no such path, no storage file, no readable header)."""


def automot_msgs_dir() -> Path:
    """Where automot_msgs' .msg files are: an ament install (AMENT_PREFIX_PATH) or the source tree."""
    candidates = [Path(p) / "share" / "automot_msgs" / "msg"
                  for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates.append(Path(__file__).resolve().parents[3] / "automot_msgs" / "msg")
    for candidate in candidates:
        if (candidate / "DrivingPlan.msg").is_file():
            return candidate
    raise BagError("cannot find automot_msgs/msg/*.msg (source the workspace, or run from the source tree)")


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Kilted typestore with automot_msgs registered (one per process)."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = automot_msgs_dir()
    types = {}
    for name in AUTOMOT_MSG_TYPES:
        types.update(get_types_from_msg((msg_dir / f"{name}.msg").read_text(), f"automot_msgs/msg/{name}"))
    store.register(types)
    return store


def _bag_types(msgtype: str, definition: str, encoding: str) -> dict:
    """Parse trees of a type (and its dependencies) from a bag's embedded definition."""
    if not definition:
        return {}
    if encoding in ("ros2msg", "msg"):
        return get_types_from_msg(definition, msgtype)
    if encoding in ("ros2idl", "idl", "omgidl"):
        separator = "=" * 80 + "\n"
        if definition.startswith(separator + "IDL: "):
            types = {}
            for section in definition.split(separator)[1:]:
                types.update(get_types_from_idl(section.split("\n", 1)[1]))
            return types
        return get_types_from_idl(definition)
    return {}


def _store_with(definitions: Dict[str, tuple]):
    """A typestore: the default one's types, replaced by a bag's own definitions where given."""
    if not definitions:
        return typestore()
    types = dict(typestore().fielddefs)
    for msgtype, (definition, encoding) in definitions.items():
        try:
            types.update(_bag_types(msgtype, definition, encoding))
        except Exception:  # noqa: BLE001 - an unparsable definition: keep the default type
            pass
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    return store


def deserialize(data: bytes, msgtype: str):
    return typestore().deserialize_cdr(data, msgtype)


def serialize(msg, msgtype: str) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msgtype))


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time (a rosbags object) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: Optional[int]  # None when unknown (salvaged file)
    transient_local: bool = False  # offered with TRANSIENT_LOCAL durability (latched)


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    log_time_ns: int  # receive time as recorded (rosbag2's timestamp)
    data: bytes  # CDR



@dataclass
class _Source:
    """One storage file (or a whole bag directory) and how it is read."""

    path: Path
    storage: str
    reader: Optional[Reader] = None  # rosbags, when it opened the file
    salvage_reason: str = ""  # why rosbags could not open it (then a forward scan reads it)
    topics: Dict[str, TopicInfo] = field(default_factory=dict)
    scan_path: Optional[Path] = None  # what the forward scan reads (a zero-padded copy of a cut database)
    tmpdir: Optional[tempfile.TemporaryDirectory] = None


class BagReader:
    """A rosbag2 bag (directory with metadata.yaml, or a bare .mcap/.db3 file), read lazily.

    ``topics``: name -> TopicInfo for every topic found. ``messages(topics)`` yields
    RawMessage in bag order and stops at the first record it cannot read; ``error`` then
    describes it (file, position, reason, messages read so far). ``warnings`` lists files
    that rosbags could not open and that were salvaged by a forward scan.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.error: Optional[str] = None
        self.warnings: List[str] = []
        self.messages_read = 0
        self.last_log_time_ns: Optional[int] = None
        self._definitions: Dict[str, tuple] = {}  # msgtype -> (definition, encoding) carried by the bag
        self._typestore = None
        self._sources = self._open_sources()
        self.storage = self._sources[0].storage
        self.topics: Dict[str, TopicInfo] = {}
        for source in self._sources:
            for name, info in source.topics.items():
                known = self.topics.get(name)
                count = info.count if known is None else (
                    None if known.count is None or info.count is None else known.count + info.count)
                self.topics[name] = TopicInfo(name, info.msgtype, count, info.transient_local)

    # -- opening
    def _open_sources(self) -> List[_Source]:
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir():
            files = sorted((p for p in self.path.iterdir() if p.suffix in _STORAGE_SUFFIX), key=_split_order)
            if (self.path / "metadata.yaml").is_file():
                try:
                    reader = Reader(self.path)
                    reader.open()
                except Exception as error:  # noqa: BLE001 - any failure: fall back to the files
                    self.warnings.append(f"{self.path}: rosbags cannot open the bag ({_describe(error)})")
                else:
                    # Name the storage file in messages when there is one (errors point at it).
                    source = _Source(files[0] if len(files) == 1 else self.path,
                                     _STORAGE_SUFFIX.get(files[0].suffix, "mcap") if files else "mcap", reader=reader)
                    source.topics = _reader_topics(reader, self._definitions)
                    return [source]
            if not files:
                raise BagError(f"bag directory {self.path} holds no .mcap or .db3 file")
        elif self.path.suffix in _STORAGE_SUFFIX:
            files = [self.path]
        else:
            raise BagError(f"{self.path}: not a rosbag2 directory, .mcap or .db3 file")
        return [self._open_file(f) for f in files]

    def _open_file(self, path: Path) -> _Source:
        storage = _STORAGE_SUFFIX[path.suffix]
        try:
            reader = Reader(path)
            reader.open()
        except Exception as error:  # noqa: BLE001
            reason = _describe(error)
            self.warnings.append(f"{path}: rosbags cannot open it ({reason}); salvaging by a forward scan")
            source = _Source(path, storage, salvage_reason=reason, scan_path=path)
            if storage == "sqlite3":
                source.scan_path, source.tmpdir = _sqlite_padded(path)
            try:
                source.topics = _salvage_topics(source.scan_path, storage, self._definitions)
            except BaseException:
                if source.tmpdir is not None:
                    source.tmpdir.cleanup()
                raise
            return source
        source = _Source(path, storage, reader=reader)
        source.topics = _reader_topics(reader, self._definitions)
        return source

    # -- reading
    def messages(self, topics: Optional[Iterable[str]] = None) -> Iterator[RawMessage]:
        """Messages on ``topics`` (all by default) in bag order; stops at the first damage."""
        wanted = None if topics is None else set(topics)
        self.error, self.messages_read, self.last_log_time_ns = None, 0, None
        for source in self._sources:
            iterator = self._source_messages(source, wanted)
            while True:
                try:
                    message = next(iterator)
                except StopIteration:
                    break
                except Exception as error:  # noqa: BLE001 - damage: report it and stop
                    last = (f", the last at log time {self.last_log_time_ns / 1e9:.3f} s"
                            if self.last_log_time_ns is not None else "")
                    self.error = (f"{source.path} is truncated or corrupt: reading stopped after "
                                  f"{self.messages_read} messages{last}: unreadable record ({_describe(error)})")
                    return
                self.messages_read += 1
                self.last_log_time_ns = message.log_time_ns
                yield message

    def _source_messages(self, source: _Source, wanted) -> Iterator[RawMessage]:
        if source.reader is not None:
            connections = [c for c in source.reader.connections if wanted is None or c.topic in wanted]
            if not connections:
                return
            for connection, log_time, data in source.reader.messages(connections=connections):
                yield RawMessage(connection.topic, connection.msgtype, log_time, bytes(data))
        elif source.storage == "mcap":
            yield from _scan_mcap(source.scan_path, wanted)
        else:
            yield from _scan_sqlite(source.scan_path, wanted)

    def decode(self, message: RawMessage):
        """The message as a rosbags object, by the bag's own definitions where it has them."""
        if self._typestore is None:
            self._typestore = _store_with(self._definitions)
        return self._typestore.deserialize_cdr(message.data, message.msgtype)

    def close(self) -> None:
        for source in self._sources:
            if source.reader is not None and source.reader.is_open:
                source.reader.close()
            if source.tmpdir is not None:
                source.tmpdir.cleanup()
                source.tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _split_order(path: Path):
    """rosbag2 splits name their files <bag>_0, <bag>_1, ... <bag>_10: sort by that number."""
    stem, _, index = path.stem.rpartition("_")
    return (stem, int(index), path.name) if index.isdigit() else (path.stem, -1, path.name)


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


def _reader_topics(reader: Reader, definitions: Optional[dict] = None) -> Dict[str, TopicInfo]:
    topics: Dict[str, TopicInfo] = {}
    for connection in reader.connections:
        qos = getattr(connection.ext, "offered_qos_profiles", None) or []
        latched = any(getattr(q, "durability", None) == QosDurability.TRANSIENT_LOCAL for q in qos)
        if connection.msgdef.data and definitions is not None:
            definitions[connection.msgtype] = (
                connection.msgdef.data, "ros2msg" if connection.msgdef.format.name == "MSG" else "ros2idl")
        known = topics.get(connection.topic)
        count = connection.msgcount + (known.count if known else 0)
        topics[connection.topic] = TopicInfo(connection.topic, connection.msgtype, count,
                                             latched or bool(known and known.transient_local))
    return topics


# -- mcap forward scan (https://mcap.dev/spec): records are opcode u8, length u64, body.


def _decompressor(name: str):
    if name == "":
        return lambda data: data
    if name == "lz4":
        import lz4.frame

        return lz4.frame.decompress
    if name == "zstd":
        if sys.version_info >= (3, 14):
            from compression import zstd
        else:
            from backports import zstd
        return zstd.decompress
    raise ValueError(f"unsupported mcap chunk compression {name!r}")


class _Buffer:
    """A cursor over bytes with the mcap primitives; reading past the end raises EOFError."""

    def __init__(self, data: bytes, base: int = 0):
        self.data, self.pos, self.base = data, 0, base

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise EOFError(f"truncated at byte {self.base + self.pos}: a record needs {n} bytes, {self.left()} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode()


def _mcap_records(buffer: _Buffer):
    """(opcode, body, offset, declared) per record; declared is None, except for a record cut
    by the end of the data: it comes last, with what there is of its body and the length it
    declared."""
    while buffer.left():
        start = buffer.pos
        if buffer.left() < 9:
            raise EOFError(f"truncated at byte {buffer.base + start}: {buffer.left()} bytes of a record header")
        op = buffer.take(1)[0]
        length = buffer.u64()
        if length > buffer.left():
            yield op, buffer.take(buffer.left()), buffer.base + start, length
            return
        yield op, buffer.take(length), buffer.base + start, None


def _truncated(op: int, offset: int, declared: int, have: int) -> EOFError:
    return EOFError(f"truncated at byte {offset}: record 0x{op:02x} declares {declared} bytes, {have} present")


def _scan_mcap(path: Path, wanted=None, topics_only: bool = False, definitions: Optional[dict] = None):
    """Yield RawMessage (or, with topics_only, ("topic" | "count", topic, msgtype)) from the
    start of an mcap file, without using its summary section. Raises at the first damaged
    record, after the complete messages of a cut uncompressed chunk."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < len(MCAP_MAGIC):
            raise BagError(f"{path}: empty or cut before the mcap magic")
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)  # bytes on demand, not all at once
    if data[:8] != MCAP_MAGIC:
        raise BagError(f"{path}: not an mcap file (bad magic)")
    buffer = _Buffer(data)
    buffer.take(8)
    schemas: Dict[int, tuple] = {}
    channels: Dict[int, tuple] = {}

    def handle(op: int, body: bytes):
        rec = _Buffer(body)
        if op == 0x03:  # schema: id, name, encoding, data
            schema_id = rec.u16()
            schemas[schema_id] = (rec.string(), rec.string(), rec.take(rec.u32()).decode(errors="replace"))
        elif op == 0x04:  # channel: id, schema id, topic, message encoding, metadata
            channel_id, schema_id = rec.u16(), rec.u16()
            topic = rec.string()
            name, encoding, definition = schemas.get(schema_id, ("", "", ""))
            if definitions is not None and definition:
                definitions[name] = (definition, encoding)
            channels[channel_id] = (topic, name)
            if topics_only:
                return ("topic", topic, name)
        elif op == 0x05:  # message: channel id, sequence, log time, publish time, data
            channel_id, _sequence, log_time, _publish_time = rec.u16(), rec.u32(), rec.u64(), rec.u64()
            if channel_id not in channels:
                raise ValueError(f"message on unknown channel {channel_id}")
            topic, msgtype = channels[channel_id]
            if topics_only:
                return ("count", topic, msgtype)
            if wanted is None or topic in wanted:
                return RawMessage(topic, msgtype, log_time, rec.data[rec.pos:])
        return None

    for op, body, offset, declared in _mcap_records(buffer):
        if op == 0x02:  # footer: the end
            return
        if op == 0x06:  # chunk: start, end, uncompressed size, crc, compression, records
            rec = _Buffer(body, offset + 9)
            rec.u64(), rec.u64()
            size, crc, compression = rec.u64(), rec.u32(), rec.string()
            records_size = rec.u64()
            if declared is not None and compression == "":  # cut: keep its complete records
                for inner_op, inner_body, _, inner_declared in _mcap_records(_Buffer(rec.data[rec.pos:])):
                    if inner_declared is not None:
                        break
                    item = handle(inner_op, inner_body)
                    if item is not None:
                        yield item
            if declared is not None:
                raise _truncated(op, offset, declared, len(body))
            inner = _decompressor(compression)(rec.take(records_size))
            if len(inner) != size:
                raise ValueError(f"chunk at byte {offset}: {len(inner)} bytes after decompression, expected {size}")
            if crc and zlib.crc32(inner) != crc:
                raise ValueError(f"chunk at byte {offset}: checksum mismatch")
            for inner_op, inner_body, inner_offset, inner_declared in _mcap_records(_Buffer(inner)):
                if inner_declared is not None:
                    raise ValueError(f"chunk at byte {offset}: record cut inside the chunk")
                item = handle(inner_op, inner_body)
                if item is not None:
                    yield item
        else:
            if declared is not None:
                raise _truncated(op, offset, declared, len(body))
            item = handle(op, body)
            if item is not None:
                yield item


def _salvage_topics(path: Path, storage: str, definitions: dict) -> Dict[str, TopicInfo]:
    """Topics (with the counts of readable messages) of a file rosbags could not open."""
    counts: Dict[str, int] = {}
    types: Dict[str, str] = {}
    try:
        if storage == "mcap":
            for kind, topic, msgtype in _scan_mcap(path, topics_only=True, definitions=definitions):
                types[topic] = msgtype
                if kind == "count":
                    counts[topic] = counts.get(topic, 0) + 1
        else:
            with _sqlite_connect(path) as db:
                types = {name: msgtype for _id, name, msgtype in _sqlite_topics(db, definitions).values()}
    except BagError:
        raise
    except Exception:  # noqa: BLE001 - the damage itself: messages() reports it
        pass
    if not types:
        raise BagError(f"{path}: no readable topic in the file")
    return {name: TopicInfo(name, msgtype, counts.get(name) if storage == "mcap" else None,
                            msgtype == "nav_msgs/msg/Path")
            for name, msgtype in types.items()}


def _sqlite_padded(path: Path):
    """(path to scan, temporary directory or None): a database cut short is copied and padded
    with zeros to the size its header states, so SQLite opens it and meets the missing pages
    as damage where they are, instead of refusing the whole file."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    size = path.stat().st_size
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        raise BagError(f"{path}: not an SQLite database (bad or missing header)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    stated = page_size * struct.unpack(">I", header[28:32])[0]
    if stated <= size:
        return path, None
    tmpdir = tempfile.TemporaryDirectory(prefix="automot-salvage-")
    copy = Path(tmpdir.name) / path.name
    shutil.copyfile(path, copy)
    with open(copy, "ab") as handle:
        handle.truncate(stated)
    return copy, tmpdir


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    except sqlite3.Error as error:
        raise BagError(f"{path}: cannot open the database: {error}") from error


def _sqlite_topics(db: sqlite3.Connection, definitions: Optional[dict] = None) -> Dict[int, tuple]:
    try:
        rows = db.execute("SELECT id, name, type FROM topics").fetchall()
    except sqlite3.Error as error:
        raise BagError(f"cannot read the topics table: {error}") from error
    try:
        for msgtype, encoding, definition in db.execute(
                "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
            if definitions is not None and definition:
                definitions[msgtype] = (definition, encoding)
    except sqlite3.Error:
        pass  # older bags have no message_definitions table
    return {row[0]: row for row in rows}


def _scan_sqlite(path: Path, wanted=None) -> Iterator[RawMessage]:
    """Messages in insertion order (rowid), lazily: a damaged page raises where it is met."""
    db = _sqlite_connect(path)
    try:
        topics = _sqlite_topics(db)
        for topic_id, log_time, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            _id, topic, msgtype = topics.get(topic_id, (topic_id, None, None))
            if topic is None:
                raise ValueError(f"message on unknown topic id {topic_id}")
            if wanted is None or topic in wanted:
                yield RawMessage(topic, msgtype, int(log_time), bytes(data))
    finally:
        db.close()


# --------------------------------------------------------------------------- writing


def _qos(transient_local: bool) -> Qos:
    """The offered QoS recorded for a topic (reliable, keep last; latched when transient_local)."""
    zero = QosTime(sec=0, nsec=0)
    return Qos(QosHistory.KEEP_LAST, 1 if transient_local else 10, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


class BagWriter:
    """A rosbag2 bag (format version 9, as ROS 2 Jazzy/Kilted write it), mcap or sqlite3.

    ``write(topic, log_time_ns, msg_or_cdr)`` takes a rosbags message object or CDR bytes;
    a topic is registered on first use with ``msgtype`` (or by ``add_topic`` beforehand).
    """

    def __init__(self, path, storage: str = "mcap", compress: bool = False):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists: rosbag2 writes a new directory")
        self._writer = Writer(self.path, version=9,
                              storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        if compress:
            mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def add_topic(self, topic: str, msgtype: str, transient_local: bool = False) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore(), offered_qos_profiles=[_qos(transient_local)])
            self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg, msgtype: Optional[str] = None) -> None:
        if topic not in self._connections:
            if msgtype is None:
                msgtype = msg.__msgtype__
            self.add_topic(topic, msgtype)
        connection = self._connections[topic]
        data = msg if isinstance(msg, (bytes, bytearray, memoryview)) else serialize(msg, connection.msgtype)
        self._writer.write(connection, int(log_time_ns), bytes(data))
        self.counts[topic] += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self._writer.abort()


def storage_of(path) -> str:
    """'mcap' or 'sqlite3' for a bag directory or storage file (by its files' suffixes)."""
    path = Path(path)
    files: Sequence[Path] = sorted(path.iterdir()) if path.is_dir() else [path]
    for f in files:
        if f.suffix in _STORAGE_SUFFIX:
            return _STORAGE_SUFFIX[f.suffix]
    raise BagError(f"{path}: no .mcap or .db3 file")


class MessageBuilder:
    """rosbags message objects for the types the stack's input bags hold (camera, odometry,
    route, agent boxes), ready for ``BagWriter.write``."""

    def __init__(self):
        self.t = typestore().types

    def stamp(self, ns: int):
        return self.t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def header(self, ns: int, frame_id: str):
        return self.t["std_msgs/msg/Header"](stamp=self.stamp(ns), frame_id=frame_id)

    def pose(self, x: float, y: float, z: float, yaw: float):
        point = self.t["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z))
        q = self.t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2)))
        return self.t["geometry_msgs/msg/Pose"](position=point, orientation=q)

    def image(self, ns: int, rgb: np.ndarray, frame_id: str):
        h, w = rgb.shape[:2]
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
            data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1))

    def odometry(self, ego, frame_id: str):
        vec = self.t["geometry_msgs/msg/Vector3"]
        twist = self.t["geometry_msgs/msg/Twist"](linear=vec(x=float(ego.speed_mps), y=0.0, z=0.0),
                                                  angular=vec(x=0.0, y=0.0, z=0.0))
        return self.t["nav_msgs/msg/Odometry"](
            header=self.header(ego.stamp_ns, frame_id), child_frame_id="base_link",
            pose=self.t["geometry_msgs/msg/PoseWithCovariance"](pose=self.pose(ego.x, ego.y, 0.0, ego.yaw),
                                                                covariance=np.zeros(36)),
            twist=self.t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))

    def path(self, ns: int, points_xy: np.ndarray, frame_id: str):
        header = self.header(ns, frame_id)
        poses = [self.t["geometry_msgs/msg/PoseStamped"](header=header, pose=self.pose(x, y, 0.0, 0.0))
                 for x, y in points_xy]
        return self.t["nav_msgs/msg/Path"](header=header, poses=poses)

    def markers(self, ns: int, agents, frame_id: str):
        marker_cls = self.t["visualization_msgs/msg/Marker"]
        vec = self.t["geometry_msgs/msg/Vector3"]
        markers = []
        for agent in agents:
            markers.append(marker_cls(
                header=self.header(ns, frame_id), ns=f"agents/{agent.kind}", id=agent.agent_id,
                type=marker_cls.CUBE, action=marker_cls.ADD,
                pose=self.pose(agent.x, agent.y, agent.height / 2.0, agent.yaw),
                scale=vec(x=agent.length, y=agent.width, z=agent.height),
                color=self.t["std_msgs/msg/ColorRGBA"](r=0.9, g=0.5, b=0.1, a=0.8),
                lifetime=self.t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False,
                points=[], colors=[], texture_resource="",
                texture=self.t["sensor_msgs/msg/CompressedImage"](header=self.header(0, ""), format="", data=np.zeros(0, np.uint8)),
                uv_coordinates=[], text="", mesh_resource="",
                mesh_file=self.t["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
                mesh_use_embedded_materials=False))
        return self.t["visualization_msgs/msg/MarkerArray"](markers=markers)
