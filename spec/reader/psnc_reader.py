#!/usr/bin/env python3
"""An independent reader of psnc-cr checkpoint images, written from spec/FORMAT.md alone.

It uses nothing but the Python 3 standard library and shares no code with the Rust
implementation, so when it and the Rust reader agree on an image, the spec says enough to read it.
Section and field names, and the order of the checks, follow FORMAT.md; the section numbers of
the spec are given as "(§N)".

    python3 psnc_reader.py IMAGE [--json] [--parent PARENT | --no-chain]

An incremental image (format 1.4, §8.24) is read with its parent chain: the parent is found
where --parent says, else where the image's `parent` section says; --no-chain reads the image
alone.

Exit status: 0 when the image is valid, 1 when it is not (the first problem is named), 2 when it
cannot be read at all.
"""

import argparse
import bisect
import hashlib
import json
import os
import struct
import sys
import time

# ---------------------------------------------------------------------------------------------
# Constants (§2, §3, §4, §5)

MAGIC = b"\x89PSNC\r\n\x1a"
END_MAGIC = b"PSNCEND\n"
SUPPORTED_MAJOR = 1
SUPPORTED_MINOR = 0
MIN_HEADER_SIZE = 32
HEADER_FLAG_STREAMED = 1 << 0

SECTION_CRITICAL = 1 << 0
SECTION_SAFE_TO_COPY = 1 << 1
SECTION_CHUNKED = 1 << 2

PAGE_SIZE = 4096
RAW_ALIGN = 4096
SECTION_ALIGN = 8

# kind number -> (name, newest version this reader decodes, body type)
KINDS = {
    1: ("identity", 1, "postcard"),
    2: ("processes", 1, "postcard"),
    3: ("threads", 1, "postcard"),
    4: ("vmas", 1, "postcard"),
    5: ("page-index", 1, "fixed"),
    6: ("page-data", 1, "raw"),
    7: ("files", 1, "postcard"),
    8: ("file-data", 1, "raw"),
    9: ("fds", 1, "postcard"),
    10: ("signals", 1, "postcard"),
    11: ("chunk-digests", 1, "postcard"),
    12: ("epoll", 1, "postcard"),  # format 1.1
    13: ("event-fds", 1, "postcard"),  # format 1.2
    14: ("fd-shares", 1, "postcard"),  # format 1.3
    15: ("shared-memory", 1, "postcard"),  # format 1.3
    16: ("zombies", 1, "postcard"),  # format 1.3
    17: ("aio", 1, "postcard"),  # format 1.3
    18: ("inet-sockets", 1, "postcard"),  # format 1.3
    19: ("unix-sockets", 1, "postcard"),  # format 1.3
    20: ("ttys", 1, "postcard"),  # format 1.3
    22: ("sysv-shm", 1, "postcard"),  # format 1.3
    23: ("unix-peers", 1, "postcard"),  # format 1.3
    24: ("parent", 1, "postcard"),  # format 1.4
}
KIND_NUMBER = {name: number for number, (name, _, _) in KINDS.items()}
# Kinds 1..10 appear exactly once in a 1.x image; the kinds of 1.1 and later at most once (each
# only when needed), chunk-digests once per chunked section.
AT_MOST_ONCE = (
    "epoll",
    "event-fds",
    "fd-shares",
    "shared-memory",
    "zombies",
    "aio",
    "inet-sockets",
    "unix-sockets",
    "ttys",
    "sysv-shm",
    "unix-peers",
    "parent",
)
OPTIONAL = ("chunk-digests",) + AT_MOST_ONCE
REQUIRED = [n for n in KINDS if KINDS[n][0] not in OPTIONAL]


class ImageError(Exception):
    """The image is invalid; the message names what is wrong and where."""


def kind_name(number):
    return KINDS[number][0] if number in KINDS else "unknown kind %#x" % number


# ---------------------------------------------------------------------------------------------
# postcard wire format (§7)


class Cursor:
    """Decodes postcard values from one section body, naming the section and byte on errors."""

    def __init__(self, data, section, base, word):
        self.data = data
        self.pos = 0
        self.section = section
        self.base = base  # offset of the body in the image, for messages
        self.word = word  # class width in bytes: 4 or 8

    def fail(self, what):
        raise ImageError(
            "section %s: %s at image offset %#x (byte %d of the section)"
            % (self.section, what, self.base + self.pos, self.pos)
        )

    def take(self, n, what):
        if n > len(self.data) - self.pos:
            self.fail("%s needs %d bytes, only %d left" % (what, n, len(self.data) - self.pos))
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return b

    def varint(self, bits, what):
        """LEB128 unsigned, at most ceil(bits/7) bytes; the value must fit in `bits`."""
        max_len = (bits + 6) // 7
        value = 0
        for i in range(max_len):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if byte & 0x80 == 0:
                if value >> bits:
                    self.fail("%s: varint value %#x does not fit %d bits" % (what, value, bits))
                return value
        self.fail("%s: varint longer than %d bytes" % (what, max_len))

    def zigzag(self, bits, what):
        u = self.varint(bits, what)
        return (u >> 1) ^ -(u & 1)

    def length(self, what, element_min_size=1):
        n = self.varint(64, what + " length")
        # Never trust a length further than the bytes that are there.
        if n * element_min_size > len(self.data) - self.pos:
            self.fail("%s: length %d exceeds the %d bytes left" % (what, n, len(self.data) - self.pos))
        return n

    def value(self, t, what):
        """Decodes one value of schema type `t` (see SCHEMA)."""
        if isinstance(t, str):
            if t == "u8":
                return self.take(1, what)[0]
            if t in ("u16", "u32", "u64"):
                return self.varint(int(t[1:]), what)
            if t in ("i32", "i64"):
                return self.zigzag(int(t[1:]), what)
            if t == "bool":
                b = self.take(1, what)[0]
                if b > 1:
                    self.pos -= 1
                    self.fail("%s: bool byte %#04x is neither 0 nor 1" % (what, b))
                return b == 1
            if t == "word":
                return int.from_bytes(self.take(self.word, what), "little")
            if t == "string":
                n = self.length(what)
                raw = self.take(n, what)
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.pos -= n
                    self.fail("%s: string is not UTF-8" % what)
            if t == "bytes":
                return self.take(self.length(what), what)
            if t == "sha256":
                return self.take(32, what)
            if t in SCHEMA:
                return self.value(SCHEMA[t], what)
            raise AssertionError("unknown schema type " + t)
        tag = t[0]
        if tag == "struct":
            return {name: self.value(ft, what + "." + name) for name, ft in t[1]}
        if tag == "vec":
            n = self.length(what, 1)
            return [self.value(t[1], "%s[%d]" % (what, i)) for i in range(n)]
        if tag == "array":
            return [self.value(t[2], "%s[%d]" % (what, i)) for i in range(t[1])]
        if tag == "option":
            b = self.take(1, what + " option tag")[0]
            if b == 0:
                return None
            if b == 1:
                return self.value(t[1], what)
            self.pos -= 1
            self.fail("%s: option tag %#04x is neither 0 nor 1" % (what, b))
        if tag == "enum":
            index = self.varint(32, what + " variant")
            if index >= len(t[1]):
                self.fail("%s: variant index %d, this reader knows %d" % (what, index, len(t[1])))
            name, fields = t[1][index]
            if fields is None:  # unit variant
                return {"variant": name}
            if isinstance(fields, list):  # struct variant
                out = {"variant": name}
                out.update(self.value(("struct", fields), what + "." + name))
                return out
            return {"variant": name, "value": self.value(fields, what + "." + name)}  # newtype
        raise AssertionError("unknown schema tag %r" % (tag,))


def st(*fields):
    return ("struct", list(fields))


# The frozen version-1 structs, field by field, in wire order (§8). "word" is a class-width
# integer: 4 bytes little endian in the 32-bit layout class, 8 in the 64-bit one.
SCHEMA = {}
SCHEMA["HostV1"] = st(
    ("kernel_release", "string"),
    ("machine", "string"),
    ("hostname", "string"),
    ("cpu_vendor", "string"),
    ("cpu_model", "string"),
    ("cpu_flags", ("vec", "string")),
    ("xsave_features", "u64"),
    ("xsave_size", "u32"),
)
SCHEMA["IdentityV1"] = st(
    ("tool_version", "string"),
    ("created_ns", "u64"),
    ("host", "HostV1"),
    ("capture_uid", "u32"),
    ("capture_gid", "u32"),
    ("capture_cmdline", ("vec", "string")),
)
SCHEMA["ArchV1"] = ("enum", [("X86_64", None), ("I386", None)])
SCHEMA["CredsV1"] = st(
    ("uids", ("array", 4, "u32")),
    ("gids", ("array", 4, "u32")),
    ("groups", ("vec", "u32")),
    ("cap_inh", "u64"),
    ("cap_prm", "u64"),
    ("cap_eff", "u64"),
    ("cap_bnd", "u64"),
    ("cap_amb", "u64"),
    ("securebits", "u32"),
)
SCHEMA["FileIdentityV1"] = st(
    ("dev", "u64"),
    ("ino", "u64"),
    ("size", "u64"),
    ("mtime_ns", "i64"),
    ("mode", "u32"),
    ("sha256", "sha256"),
)
SCHEMA["FileRefV1"] = st(
    ("path", "string"),
    ("deleted", "bool"),
    ("identity", "FileIdentityV1"),
    ("stored", ("option", "u32")),
)
SCHEMA["MmV1"] = st(
    *[
        (name, "word")
        for name in (
            "start_code end_code start_data end_data start_brk brk start_stack "
            "arg_start arg_end env_start env_end"
        ).split()
    ]
)
SCHEMA["RlimitV1"] = st(("cur", "u64"), ("max", "u64"))
SCHEMA["ProcessV1"] = st(
    ("pid", "u32"),
    ("ppid", "u32"),
    ("pgid", "u32"),
    ("sid", "u32"),
    ("arch", "ArchV1"),
    ("comm", "string"),
    ("creds", "CredsV1"),
    ("cwd", "string"),
    ("root", "string"),
    ("umask", "u32"),
    ("personality", "u32"),
    ("rlimits", ("vec", "RlimitV1")),
    ("exe", "FileRefV1"),
    ("mm", "MmV1"),
    ("auxv", "bytes"),
    ("cmdline", "bytes"),
    ("dumpable", "u32"),
    ("no_new_privs", "bool"),
    ("pdeathsig", "u32"),
    ("child_subreaper", "bool"),
    ("seccomp_mode", "u32"),
)
SCHEMA["RegsV1"] = ("enum", [("X86_64", ("array", 27, "u64")), ("I386", ("array", 17, "u32"))])
SCHEMA["UserDescV1"] = st(("entry_number", "u32"), ("base_addr", "u32"), ("limit", "u32"), ("flags", "u32"))
SCHEMA["SigInfoV1"] = st(("signo", "u32"), ("code", "i32"), ("raw", "bytes"))
SCHEMA["SigAltStackV1"] = st(("sp", "word"), ("flags", "u32"), ("size", "word"))
SCHEMA["RseqV1"] = st(("addr", "word"), ("len", "u32"), ("sig", "u32"), ("flags", "u32"))
SCHEMA["RestartV1"] = ("enum", [("None", None), ("Reissue", [("nr", "u64"), ("code", "i64")])])
SCHEMA["ThreadV1"] = st(
    ("pid", "u32"),
    ("tid", "u32"),
    ("comm", "string"),
    ("regs", "RegsV1"),
    ("xsave", "bytes"),
    ("xstate_bv", "u64"),
    ("fs_base", "word"),
    ("gs_base", "word"),
    ("tls", ("vec", "UserDescV1")),
    ("sigmask", "u64"),
    ("pending", ("vec", "SigInfoV1")),
    ("sigaltstack", "SigAltStackV1"),
    ("clear_child_tid", "word"),
    ("robust_list", "word"),
    ("robust_list_len", "word"),
    ("rseq", ("option", "RseqV1")),
    ("restart", "RestartV1"),
)
SCHEMA["VmaKindV1"] = (
    "enum",
    [(n, None) for n in ("Anonymous", "Heap", "Stack", "File", "Vdso", "Vvar", "VvarVclock", "Vsyscall")],
)
SCHEMA["VmaV1"] = st(
    ("pid", "u32"),
    ("start", "word"),
    ("end", "word"),
    ("prot", "u32"),
    ("shared", "bool"),
    ("kind", "VmaKindV1"),
    ("file_offset", "u64"),
    ("file", ("option", "FileRefV1")),
    ("vm_flags", "u32"),
)
SCHEMA["StoredFileV1"] = st(("sha256", "sha256"), ("size", "word"), ("path", "string"), ("data_offset", "word"))
SCHEMA["PipeEndV1"] = st(
    ("ino", "u64"), ("write_end", "bool"), ("buffered", "bytes"), ("capacity", "u32"), ("external", "bool")
)
SCHEMA["FdKindV1"] = (
    "enum",
    [
        ("Regular", "FileRefV1"),
        ("Directory", [("path", "string")]),
        ("CharDevice", [("path", "string"), ("rdev", "u64")]),
        ("Tty", [("path", "string"), ("rdev", "u64")]),
        ("Pipe", "PipeEndV1"),
        ("Fifo", [("path", "string"), ("buffered", "bytes")]),
        ("Socket", [("family", "u32"), ("sock_type", "u32"), ("ino", "u64")]),
        ("EventFd", [("count", "u64")]),
        ("Epoll", None),
        ("TimerFd", None),
        ("SignalFd", [("mask", "u64")]),
        ("MemFd", [("name", "string")]),
        ("Other", [("link", "string")]),
        ("Inotify", None),  # format 1.2
        ("MemFdObject", [("object", "u32"), ("size", "u64")]),  # format 1.3
        ("PtyMaster", [("index", "u32")]),  # format 1.3
        (
            "Netlink",
            [
                ("sock_type", "u32"),
                ("protocol", "u32"),
                ("ino", "u64"),
                ("portid", "u32"),
                ("groups", ("vec", "u32")),
                ("dst_portid", "u32"),
                ("dst_group", "u32"),
            ],
        ),  # format 1.3
    ],
)
SCHEMA["FdV1"] = st(
    ("pid", "u32"), ("fd", "i32"), ("flags", "u32"), ("cloexec", "bool"), ("pos", "u64"), ("kind", "FdKindV1")
)
SCHEMA["SigActionV1"] = st(("handler", "word"), ("flags", "u64"), ("restorer", "word"), ("mask", "u64"))
SCHEMA["ITimerV1"] = st(("value_us", "u64"), ("interval_us", "u64"))
SCHEMA["PosixTimerV1"] = st(
    ("id", "u32"),
    ("clock", "u32"),
    ("notify", "u32"),
    ("signo", "u32"),
    ("sigev_value", "word"),
    ("notify_tid", "u32"),
    ("value_ns", "u64"),
    ("interval_ns", "u64"),
    ("overrun", "u32"),
)
SCHEMA["SignalsV1"] = st(
    ("pid", "u32"),
    ("actions", ("vec", "SigActionV1")),
    ("shared_pending", ("vec", "SigInfoV1")),
    ("itimers", ("array", 3, "ITimerV1")),
    ("posix_timers", ("vec", "PosixTimerV1")),
)
SCHEMA["EpollWatchV1"] = st(("tfd", "i32"), ("events", "u32"), ("data", "u64"))
SCHEMA["EpollV1"] = st(("pid", "u32"), ("fd", "i32"), ("watches", ("vec", "EpollWatchV1")))
SCHEMA["InotifyWatchV1"] = st(("wd", "i32"), ("mask", "u32"), ("path", "string"), ("ino", "u64"), ("dev", "u64"))
SCHEMA["EventFdStateV1"] = (
    "enum",
    [
        ("EventFd", [("count", "u64"), ("semaphore", "bool")]),
        (
            "TimerFd",
            [("clockid", "i32"), ("settime_flags", "u32"), ("ticks", "u64"), ("value_ns", "u64"), ("interval_ns", "u64")],
        ),
        ("SignalFd", [("mask", "u64")]),
        ("Inotify", [("watches", ("vec", "InotifyWatchV1"))]),
    ],
)
SCHEMA["EventFdV1"] = st(("pid", "u32"), ("fd", "i32"), ("state", "EventFdStateV1"))
SCHEMA["FdRefV1"] = st(("pid", "u32"), ("fd", "i32"))
SCHEMA["FdShareV1"] = st(("fds", ("vec", "FdRefV1")))
SCHEMA["ExitStatusV1"] = ("enum", [("Exited", [("code", "u32")]), ("Killed", [("signal", "u32"), ("core", "bool")])])
SCHEMA["ZombieV1"] = st(("pid", "u32"), ("ppid", "u32"), ("pgid", "u32"), ("sid", "u32"), ("status", "ExitStatusV1"))
SCHEMA["AioContextV1"] = st(
    ("pid", "u32"),
    ("ring", "word"),
    ("ring_len", "word"),
    ("nr_events", "u32"),
    ("head", "u32"),
    ("tail", "u32"),
    ("events", "bytes"),
)
SCHEMA["SharedMemoryKindV1"] = ("enum", [("Anonymous", None), ("Memfd", [("name", "string"), ("seals", "u32")])])
SCHEMA["SharedPageRunV1"] = st(("offset", "u64"), ("pages", "u64"), ("data_offset", "word"))
SCHEMA["SharedMappingV1"] = st(("pid", "u32"), ("start", "word"))
SCHEMA["SysvAttachV1"] = st(("pid", "u32"), ("start", "word"), ("read_only", "bool"))
SCHEMA["UnixPeerV1"] = st(
    ("ino", "u64"),
    ("peer_ino", "u64"),
    ("name", "bytes"),
)
SCHEMA["SysvShmV1"] = st(
    ("key", "i32"),
    ("shmid", "i32"),
    ("mode", "u32"),
    ("uid", "u32"),
    ("gid", "u32"),
    ("cuid", "u32"),
    ("cgid", "u32"),
    ("size", "u64"),
    ("removed", "bool"),
    ("locked", "bool"),
    ("pages", ("vec", "SharedPageRunV1")),
    ("attachments", ("vec", "SysvAttachV1")),
)
SCHEMA["SharedMemoryV1"] = st(
    ("kind", "SharedMemoryKindV1"),
    ("dev", "u64"),
    ("ino", "u64"),
    ("size", "u64"),
    ("pages", ("vec", "SharedPageRunV1")),
    ("mappings", ("vec", "SharedMappingV1")),
)
SCHEMA["InetStateV1"] = ("enum", [("Closed", None), ("Bound", None), ("Listening", None), ("Connected", None), ("Established", None), ("Shut", None)])
SCHEMA["TcpRepairV1"] = st(
    ("snd_seq", "u32"),
    ("rcv_seq", "u32"),
    ("send_queue", "bytes"),
    ("unsent", "u32"),
    ("recv_queue", "bytes"),
    ("mss", "u32"),
    ("tcp_options", "u8"),
    ("snd_wscale", "u8"),
    ("rcv_wscale", "u8"),
    ("timestamp", "u32"),
    ("snd_wl1", "u32"),
    ("snd_wnd", "u32"),
    ("max_window", "u32"),
    ("rcv_wnd", "u32"),
    ("rcv_wup", "u32"),
)
SCHEMA["SockOptionV1"] = st(("level", "i32"), ("name", "i32"), ("value", "i32"))
SCHEMA["InetSocketV1"] = st(
    ("pid", "u32"),
    ("fd", "i32"),
    ("family", "u32"),
    ("sock_type", "u32"),
    ("protocol", "u32"),
    ("state", "InetStateV1"),
    ("local_addr", "bytes"),
    ("local_port", "u16"),
    ("peer_addr", "bytes"),
    ("peer_port", "u16"),
    ("backlog", "u32"),
    ("options", ("vec", "SockOptionV1")),
    ("tcp", ("option", "TcpRepairV1")),
)
SCHEMA["PtyV1"] = st(
    ("index", "u32"),
    ("locked", "bool"),
    ("packet", "bool"),
    ("termios", "bytes"),
    ("winsize", "bytes"),
    ("masters", ("vec", "FdRefV1")),
    ("slaves", ("vec", "FdRefV1")),
    ("session", "u32"),
    ("foreground", "u32"),
)
SCHEMA["UnixSocketFileV1"] = st(("mode", "u32"), ("uid", "u32"), ("gid", "u32"))
SCHEMA["UnixSocketV1"] = st(
    ("pid", "u32"),
    ("fd", "i32"),
    ("ino", "u64"),
    ("sock_type", "u32"),
    ("state", "u8"),
    ("peer_ino", "u64"),
    ("name", "bytes"),
    ("file", ("option", "UnixSocketFileV1")),
    ("backlog", "u32"),
    ("shutdown", "u8"),
    ("passcred", "bool"),
    ("rcvbuf", "u32"),
    ("sndbuf", "u32"),
    ("queued", ("vec", "bytes")),
)
# §8.24 (format 1.4): the parent of an incremental image.
SCHEMA["ParentRunV1"] = st(("pid", "u32"), ("addr", "word"), ("pages", "word"))
SCHEMA["ParentV1"] = st(
    ("digest", "sha256"),
    ("path", "string"),
    ("pages", ("vec", "ParentRunV1")),
    ("files", ("vec", "u32")),
)
SCHEMA["ChunkDigestsV1"] = st(("section_kind", "u32"), ("chunk_size", "u32"), ("digests", ("vec", "sha256")))

# Body of each postcard section, version 1.
SECTION_BODY = {
    "identity": "IdentityV1",
    "processes": ("vec", "ProcessV1"),
    "threads": ("vec", "ThreadV1"),
    "vmas": ("vec", "VmaV1"),
    "files": ("vec", "StoredFileV1"),
    "fds": ("vec", "FdV1"),
    "signals": ("vec", "SignalsV1"),
    "chunk-digests": "ChunkDigestsV1",
    "epoll": ("vec", "EpollV1"),
    "event-fds": ("vec", "EventFdV1"),
    "fd-shares": ("vec", "FdShareV1"),
    "zombies": ("vec", "ZombieV1"),
    "aio": ("vec", "AioContextV1"),
    "shared-memory": ("vec", "SharedMemoryV1"),
    "inet-sockets": ("vec", "InetSocketV1"),
    "ttys": ("vec", "PtyV1"),
    "unix-sockets": ("vec", "UnixSocketV1"),
    "sysv-shm": ("vec", "SysvShmV1"),
    "unix-peers": ("vec", "UnixPeerV1"),
    "parent": "ParentV1",
}


def decode_postcard(body, name, base, word):
    cur = Cursor(body, name, base, word)
    value = cur.value(SECTION_BODY[name], name)
    if cur.pos != len(body):
        cur.fail("%d trailing bytes after the value" % (len(body) - cur.pos))
    return value


# ---------------------------------------------------------------------------------------------
# Fixed structures: header (§2), section table (§3), trailer (§4), page index (§8.5); digests (§9)


def le(b):
    return int.from_bytes(b, "little")


def parse_header(data):
    if len(data) < MIN_HEADER_SIZE:
        raise ImageError("truncated: the header needs %d bytes, the image has %d" % (MIN_HEADER_SIZE, len(data)))
    magic = data[0:8]
    if magic != MAGIC:
        raise ImageError("not a psnc-cr image: magic at byte 0 is %s" % magic.hex())
    major, minor = struct.unpack_from("<HH", data, 8)
    if major != SUPPORTED_MAJOR:
        raise ImageError(
            "image format version %d.%d is not supported: this reader supports major version %d"
            % (major, minor, SUPPORTED_MAJOR)
        )
    layout_class, byte_order = data[12], data[13]
    if layout_class not in (1, 2):
        raise ImageError("unknown layout class %d at byte 12" % layout_class)
    if byte_order != 1:
        raise ImageError("byte order %d at byte 13 is not little endian (1)" % byte_order)
    (header_size,) = struct.unpack_from("<H", data, 14)
    if header_size < MIN_HEADER_SIZE:
        raise ImageError("header size %d at byte 14 is below %d" % (header_size, MIN_HEADER_SIZE))
    (flags,) = struct.unpack_from("<I", data, 16)
    chunk_shift = data[20]
    if not 12 <= chunk_shift <= 30:
        raise ImageError("chunk shift %d at byte 20 is outside 12..30" % chunk_shift)
    word = 4 * layout_class
    table_offset = le(data[24 : 24 + word])
    return {
        "major": major,
        "minor": minor,
        "class_bits": 8 * word,
        "word": word,
        "header_size": header_size,
        "flags": flags,
        "streamed": bool(flags & HEADER_FLAG_STREAMED),
        "chunk_shift": chunk_shift,
        "table_offset": table_offset,
    }


def parse_trailer(data, header):
    w = header["word"]
    size = 2 * w + 32 + 8
    if len(data) < header["header_size"] + size:
        raise ImageError("truncated: header and trailer need %d bytes, the image has %d" % (header["header_size"] + size, len(data)))
    t = data[len(data) - size :]
    if t[-8:] != END_MAGIC:
        raise ImageError("no trailer: the last 8 bytes are %s, not PSNCEND\\n (truncated or unfinished)" % t[-8:].hex())
    return {
        "offset": len(data) - size,
        "size": size,
        "table_offset": le(t[0:w]),
        "table_count": le(t[w : 2 * w]),
        "image_sha256": t[2 * w : 2 * w + 32],
    }


def parse_table(data, header, trailer):
    w = header["word"]
    esize = 8 + 2 * w + 32
    start = trailer["table_offset"]
    end = start + trailer["table_count"] * esize
    if start < header["header_size"] or end != trailer["offset"]:
        raise ImageError(
            "section table of %d entries at %#x..%#x does not end where the trailer starts (%#x)"
            % (trailer["table_count"], start, end, trailer["offset"])
        )
    if header["table_offset"] not in (0, start):
        raise ImageError(
            "header table offset %#x disagrees with the trailer's %#x" % (header["table_offset"], start)
        )
    entries = []
    for i in range(trailer["table_count"]):
        e = data[start + i * esize : start + (i + 1) * esize]
        kind, version, flags = struct.unpack_from("<IHH", e, 0)
        entries.append(
            {
                "index": i,
                "kind": kind,
                "name": kind_name(kind),
                "version": version,
                "flags": flags,
                "offset": le(e[8 : 8 + w]),
                "length": le(e[8 + w : 8 + 2 * w]),
                "sha256": e[8 + 2 * w : 8 + 2 * w + 32],
            }
        )
    return entries, start, end


def image_digest(data, header, trailer, table_start, table_end):
    h = hashlib.sha256()
    h.update(data[: header["header_size"]])
    h.update(data[table_start:table_end])
    h.update(data[trailer["offset"] : trailer["offset"] + 2 * header["word"]])
    return h.digest()


def chunk_digests(body, chunk_size):
    return [hashlib.sha256(body[i : i + chunk_size]).digest() for i in range(0, len(body), chunk_size)]


def section_digest(body, flags, chunk_size):
    if flags & SECTION_CHUNKED:
        return hashlib.sha256(b"".join(chunk_digests(body, chunk_size))).digest()
    return hashlib.sha256(body).digest()


def parse_page_index(body, name, base, word):
    esize = 8 + 3 * word
    if len(body) % esize:
        raise ImageError("section %s at %#x: length %d is not a multiple of %d" % (name, base, len(body), esize))
    runs = []
    for i in range(0, len(body), esize):
        pid, flags = struct.unpack_from("<II", body, i)
        f = i + 8
        runs.append(
            {
                "pid": pid,
                "flags": flags,
                "addr": le(body[f : f + word]),
                "pages": le(body[f + word : f + 2 * word]),
                "data_offset": le(body[f + 2 * word : f + 3 * word]),
            }
        )
    return runs


# ---------------------------------------------------------------------------------------------
# The reading procedure (§10)


def read_image(data):
    """Parses and checks a whole image held in memory; returns everything decoded."""
    data = memoryview(data)
    header = parse_header(bytes(data[:MIN_HEADER_SIZE]))
    trailer = parse_trailer(data, header)
    entries, table_start, table_end = parse_table(data, header, trailer)
    digest = image_digest(data, header, trailer, table_start, table_end)
    if digest != trailer["image_sha256"]:
        raise ImageError("image digest mismatch over header, section table and trailer words: the image is corrupt")
    chunk_size = 1 << header["chunk_shift"]

    # Extents, alignment, overlaps, padding.
    covered = [(0, header["header_size"])]
    for e in entries:
        end = e["offset"] + e["length"]
        if e["offset"] < header["header_size"] or end > table_start:
            raise ImageError(
                "section %d (%s) at %#x+%d lies outside the data area %#x..%#x"
                % (e["index"], e["name"], e["offset"], e["length"], header["header_size"], table_start)
            )
        raw = e["kind"] in KINDS and KINDS[e["kind"]][2] == "raw"
        align = RAW_ALIGN if raw else SECTION_ALIGN
        if e["offset"] % align:
            raise ImageError("section %d (%s) at %#x is not %d-aligned" % (e["index"], e["name"], e["offset"], align))
        covered.append((e["offset"], end))
    if table_start % SECTION_ALIGN:
        raise ImageError("section table at %#x is not %d-aligned" % (table_start, SECTION_ALIGN))
    covered.append((table_start, len(data)))
    covered.sort()
    for (a_start, a_end), (b_start, _) in zip(covered, covered[1:]):
        if a_end > b_start:
            raise ImageError("byte range %#x..%#x overlaps the one starting at %#x" % (a_start, a_end, b_start))
        if any(data[a_end:b_start]):
            raise ImageError("padding %#x..%#x is not zero" % (a_end, b_start))

    # Kinds, versions, counts.
    for e in entries:
        known = e["kind"] in KINDS
        critical = bool(e["flags"] & SECTION_CRITICAL)
        if not known:
            e["status"] = "unknown, critical" if critical else "unknown, skipped"
            if critical:
                raise ImageError(
                    "section %d has unknown critical kind %#x: the image needs a newer reader" % (e["index"], e["kind"])
                )
        elif e["version"] > KINDS[e["kind"]][1] or e["version"] == 0:
            e["status"] = "version %d unknown" % e["version"]
            if critical:
                raise ImageError(
                    "section %s has version %d, this reader knows up to %d"
                    % (e["name"], e["version"], KINDS[e["kind"]][1])
                )
        else:
            e["status"] = "decoded"
    for number in REQUIRED:
        count = sum(1 for e in entries if e["kind"] == number)
        if count != 1:
            raise ImageError("section %s appears %d times; a 1.x image has exactly one" % (kind_name(number), count))
    for name in AT_MOST_ONCE:
        if sum(1 for e in entries if e["kind"] == KIND_NUMBER[name]) > 1:
            raise ImageError("section %s appears more than once" % name)

    # Every section's digest, known or not: the flags alone say how to compute it.
    for e in entries:
        body = data[e["offset"] : e["offset"] + e["length"]]
        if section_digest(body, e["flags"], chunk_size) != e["sha256"]:
            raise ImageError(
                "digest mismatch in section %d (%s), bytes %#x..%#x: the image is corrupt"
                % (e["index"], e["name"], e["offset"], e["offset"] + e["length"])
            )
        e["digest_ok"] = True

    # Decode.
    word = header["word"]
    decoded = {}
    bodies = {}
    chunk_lists = []
    for e in entries:
        if e["status"] != "decoded":
            continue
        name, base = e["name"], e["offset"]
        body = data[base : base + e["length"]]
        kind_type = KINDS[e["kind"]][2]
        if kind_type == "raw":
            bodies[name] = body
        elif kind_type == "fixed":
            decoded[name] = parse_page_index(body, name, base, word)
        elif name == "chunk-digests":
            chunk_lists.append((e, decode_postcard(body, name, base, word)))
        else:
            decoded[name] = decode_postcard(body, name, base, word)

    # The chunk digest lists must match the chunked sections they describe.
    for e, cl in chunk_lists:
        target = [t for t in entries if t["kind"] == cl["section_kind"]]
        if len(target) != 1 or not target[0]["flags"] & SECTION_CHUNKED:
            raise ImageError("chunk-digests section %d describes kind %d, which is not one chunked section" % (e["index"], cl["section_kind"]))
        t = target[0]
        if cl["chunk_size"] != chunk_size:
            raise ImageError("chunk-digests of %s: chunk size %d, header says %d" % (t["name"], cl["chunk_size"], chunk_size))
        want = chunk_digests(data[t["offset"] : t["offset"] + t["length"]], chunk_size)
        if cl["digests"] != want:
            raise ImageError("chunk-digests of %s do not match the section's chunks" % t["name"])

    check_model(decoded, bodies)
    return {
        "size": len(data),
        "header": header,
        "trailer": trailer,
        "image_digest_ok": True,
        "sections": entries,
        "chunk_digests": [cl for _, cl in chunk_lists],
        "decoded": decoded,
        "bodies": bodies,
    }


# ---------------------------------------------------------------------------------------------
# Incremental images: the parent chain (§8.24)


def own_memory(img):
    """The pages an image stores itself: pid -> runs sorted by address, each with its bytes."""
    page_data = img["bodies"]["page-data"]
    memory = {}
    for r in img["decoded"]["page-index"]:
        n = r["pages"] * PAGE_SIZE
        memory.setdefault(r["pid"], []).append(
            {"addr": r["addr"], "pages": r["pages"], "data": page_data[r["data_offset"] : r["data_offset"] + n], "source": 0}
        )
    for runs in memory.values():
        runs.sort(key=lambda s: s["addr"])
    return memory


def pages_of(memory, pid):
    """A memory map of `read_chain` for one process as {page address: its 4096 bytes}."""
    out = {}
    for s in memory.get(pid, []):
        for i in range(s["pages"]):
            out[s["addr"] + i * PAGE_SIZE] = bytes(s["data"][i * PAGE_SIZE : (i + 1) * PAGE_SIZE])
    return out


def locate_parent(recorded, image_dir, given=None):
    """§8.24 step 1: where the user says (then only there), else the recorded path (relative to
    the image's directory), else the recorded path's last component in the image's directory."""
    candidates = []
    if given is not None:
        candidates.append(given)
    elif recorded:
        candidates.append(recorded if os.path.isabs(recorded) else os.path.join(image_dir, recorded))
        last = recorded.rstrip("/").rsplit("/", 1)[-1]
        if last:
            candidates.append(os.path.join(image_dir, last))
    tried = []
    for c in candidates:
        if c in tried:
            continue
        tried.append(c)
        if os.path.isfile(c):
            return c
    raise ImageError(
        "the parent image (recorded path %r) is not found: tried %s" % (recorded, ", ".join(tried) or "nothing")
    )


def read_chain(path, parent=None, data=None, _seen=frozenset()):
    """Reads the image at `path` (or its bytes `data`) and, when it is incremental, its whole
    parent chain, verified in full, then merges them (§8.24). `parent` is where the user says the
    parent is. Besides what read_image returns, the result has `memory` (pid -> page runs with
    their bytes, from this image or the chain), `file_contents` (the contents of every stored
    file) and `chain` (None for a full image)."""
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ImageError("cannot read %s: %s" % (path, e))
    img = read_image(data)
    img["path"] = path
    own_contents(img)
    p = img["decoded"].get("parent")
    if p is None:
        return img

    # 1. Find the parent.
    where = locate_parent(p["path"], os.path.dirname(os.path.abspath(path)), parent)
    try:
        with open(where, "rb") as f:
            pdata = f.read()
    except OSError as e:
        raise ImageError("cannot read the parent image %s: %s" % (where, e))
    # 2. It is the one image this image completes: its trailer's image digest is `digest`.
    try:
        ph = parse_header(pdata[:MIN_HEADER_SIZE])
        found = parse_trailer(pdata, ph)["image_sha256"]
    except ImageError as e:
        raise ImageError("parent image %s: %s" % (where, e))
    if found != p["digest"]:
        raise ImageError(
            "parent image %s has image digest %s, but this image completes the image with digest %s: "
            "it is another image (replaced, re-captured or converted)" % (where, found.hex(), p["digest"].hex())
        )
    if p["digest"] in _seen:  # only with a SHA-256 collision; never loop
        raise ImageError("parent image %s is already in the chain" % where)
    # 3. Read and verify it in full, and its own chain.
    try:
        pimg = read_chain(where, None, pdata, _seen | {p["digest"]})
    except ImageError as e:
        raise ImageError("parent image %s: %s" % (where, e))

    merge_parent(img, pimg, where)
    return img


def own_contents(img):
    """Sets what an image of read_image holds by itself: `memory` (see own_memory),
    `file_contents` (the contents of every stored file; for those of `parent.files`, nothing
    yet) and `chain` (None)."""
    img["memory"] = own_memory(img)
    file_data = img["bodies"]["file-data"]
    in_parent = set(img["decoded"]["parent"]["files"]) if "parent" in img["decoded"] else set()
    img["file_contents"] = [
        None if i in in_parent else file_data[f["data_offset"] : f["data_offset"] + f["size"]]
        for i, f in enumerate(img["decoded"]["files"])
    ]
    img["chain"] = None


def merge_parent(img, pimg, where):
    """§8.24 step 4: each parent run's pages and each `parent.files` entry's contents of `img`
    come from `pimg`, its parent as read_chain returned it (merged with its own chain); a page
    or a file the chain does not store is refused."""
    p = img["decoded"]["parent"]
    memory = img["memory"]
    for run in p["pages"]:
        pid, addr = run["pid"], run["addr"]
        end = addr + run["pages"] * PAGE_SIZE
        segs = pimg["memory"].get(pid, [])
        starts = [s["addr"] for s in segs]
        at = addr
        while at < end:
            i = bisect.bisect_right(starts, at) - 1
            if i < 0 or at >= segs[i]["addr"] + segs[i]["pages"] * PAGE_SIZE:
                raise ImageError(
                    "parent run %#x+%d pages of pid %d: the page at %#x is stored nowhere in the parent chain (%s)"
                    % (addr, run["pages"], pid, at, where)
                )
            s = segs[i]
            stop = min(end, s["addr"] + s["pages"] * PAGE_SIZE)
            memory.setdefault(pid, []).append(
                {
                    "addr": at,
                    "pages": (stop - at) // PAGE_SIZE,
                    "data": s["data"][at - s["addr"] : stop - s["addr"]],
                    "source": s["source"] + 1,
                }
            )
            at = stop
    for runs in memory.values():
        runs.sort(key=lambda s: s["addr"])
    by_content = {}
    for f, contents in zip(pimg["decoded"]["files"], pimg["file_contents"]):
        by_content.setdefault((f["sha256"], f["size"]), contents)
    for i in p["files"]:
        f = img["decoded"]["files"][i]
        contents = by_content.get((f["sha256"], f["size"]))
        if contents is None:
            raise ImageError(
                "stored file %d (%s, %d bytes, sha256 %s) is stored nowhere in the parent chain (%s)"
                % (i, f["path"], f["size"], f["sha256"].hex(), where)
            )
        if hashlib.sha256(contents).digest() != f["sha256"]:  # the parent checked it already; cheap to check again
            raise ImageError("stored file %d (%s): the contents from the parent chain do not match its sha256" % (i, f["path"]))
        img["file_contents"][i] = contents
    img["chain"] = {
        "parent": where,
        "images": [where] + pimg["chain"]["images"] if pimg["chain"] else [where],
        "pages_from_chain": sum(r["pages"] for r in p["pages"]),
        "files_from_chain": len(p["files"]),
    }


def check_model(d, bodies):
    """Cross-references between sections (§8.12) and the ordering rules of §8.3, §8.4, §8.5."""
    pids = {p["pid"] for p in d["processes"]}
    for name in ("threads", "vmas", "fds", "signals", "page-index"):
        for item in d[name]:
            if item["pid"] not in pids:
                raise ImageError("%s entry %r belongs to pid %d, which is not in the image" % (name, item, item["pid"]))
    page_data = bodies["page-data"]
    for r in d["page-index"]:
        end = r["data_offset"] + r["pages"] * PAGE_SIZE
        if r["data_offset"] % PAGE_SIZE or end > len(page_data) or r["pages"] == 0:
            raise ImageError("page run %#x of pid %d: bytes %#x..%#x outside the page data (%d bytes)" % (r["addr"], r["pid"], r["data_offset"], end, len(page_data)))
    file_data = bodies["file-data"]
    # §8.24: in an incremental image the stored files of `parent.files` have their contents in
    # the parent chain, not in this image's file-data (their data_offset is meaningless).
    in_parent = check_parent_files(d)
    for i, f in enumerate(d["files"]):
        if i in in_parent:
            continue
        end = f["data_offset"] + f["size"]
        if f["data_offset"] % RAW_ALIGN or end > len(file_data):
            raise ImageError("stored file %d (%s): bytes %#x..%#x outside the file data" % (i, f["path"], f["data_offset"], end))
        if hashlib.sha256(file_data[f["data_offset"] : end]).digest() != f["sha256"]:
            raise ImageError("stored file %d (%s): contents do not match its sha256" % (i, f["path"]))
    # Zero padding between stored files (§5.2).
    pos = 0
    for f in sorted((f for i, f in enumerate(d["files"]) if i not in in_parent), key=lambda f: f["data_offset"]):
        if f["data_offset"] < pos:
            raise ImageError("stored file %s overlaps the previous one in file-data" % f["path"])
        if any(file_data[pos : f["data_offset"]]):
            raise ImageError("padding %#x..%#x inside file-data is not zero" % (pos, f["data_offset"]))
        pos = f["data_offset"] + f["size"]
    if any(file_data[pos:]):
        raise ImageError("padding after the last stored file is not zero")
    nfiles = len(d["files"])

    def check_ref(ref, what):
        if ref is None:
            return
        if ref["stored"] is not None and ref["stored"] >= nfiles:
            raise ImageError("%s refers to stored file %d, the image stores %d" % (what, ref["stored"], nfiles))
        if ref["deleted"] and ref["stored"] is None:
            raise ImageError("%s (%s) was deleted at capture but is not stored" % (what, ref["path"]))

    for p in d["processes"]:
        threads = [t for t in d["threads"] if t["pid"] == p["pid"]]
        if not threads or threads[0]["tid"] != p["pid"]:
            raise ImageError("the first thread of pid %d is not its leader" % p["pid"])
        prev = 0
        for v in (v for v in d["vmas"] if v["pid"] == p["pid"]):
            if v["start"] % PAGE_SIZE or v["end"] % PAGE_SIZE or v["start"] >= v["end"] or v["start"] < prev:
                raise ImageError("vma %#x-%#x of pid %d is empty, unaligned, overlapping or out of order" % (v["start"], v["end"], p["pid"]))
            prev = v["end"]
        prev = 0
        for r in (r for r in d["page-index"] if r["pid"] == p["pid"]):
            if r["addr"] % PAGE_SIZE or r["addr"] < prev:
                raise ImageError("page run %#x of pid %d is unaligned, overlapping or out of order" % (r["addr"], p["pid"]))
            prev = r["addr"] + r["pages"] * PAGE_SIZE
    check_parent_runs(d, pids)

    for p in d["processes"]:
        check_ref(p["exe"], "the executable of pid %d" % p["pid"])
    for v in d["vmas"]:
        check_ref(v["file"], "vma %#x" % v["start"])
    for f in d["fds"]:
        if f["kind"]["variant"] == "Regular":
            check_ref(f["kind"]["value"], "fd %d" % f["fd"])
    # §8.12: every epoll record names an epoll fd of its process, once.
    epolls = {(f["pid"], f["fd"]) for f in d["fds"] if f["kind"]["variant"] == "Epoll"}
    seen = set()
    for r in d.get("epoll", []):
        key = (r["pid"], r["fd"])
        if key not in epolls:
            raise ImageError("the epoll section has a record for pid %d fd %d, which is not an epoll fd" % key)
        if key in seen:
            raise ImageError("the epoll section has two records for pid %d fd %d" % key)
        seen.add(key)
    # §8.14: every event fd has exactly one event-fds record, of its own kind.
    event_kinds = {(f["pid"], f["fd"]): f["kind"]["variant"] for f in d["fds"]}
    seen = set()
    for r in d.get("event-fds", []):
        key = (r["pid"], r["fd"])
        if key in seen:
            raise ImageError("the event-fds section has two records for pid %d fd %d" % key)
        if event_kinds.get(key) != r["state"]["variant"]:
            raise ImageError("the event-fds section has a %s record for pid %d fd %d, which is not one" % ((r["state"]["variant"],) + key))
        seen.add(key)
    for key, kind in event_kinds.items():
        if kind in ("EventFd", "TimerFd", "SignalFd", "Inotify") and key not in seen:
            raise ImageError("fd %d of pid %d is an eventfd, timerfd, signalfd or inotify fd without its event-fds record" % (key[1], key[0]))
    # §8.19: every IPv4/IPv6 socket has exactly one inet-sockets record, of its family and type.
    sockets = {(f["pid"], f["fd"]): f["kind"] for f in d["fds"] if f["kind"]["variant"] == "Socket"}
    seen = set()
    for r in d.get("inet-sockets", []):
        key = (r["pid"], r["fd"])
        what = "the inet-sockets record of pid %d fd %d" % key
        if key in seen:
            raise ImageError("%s appears twice" % what)
        seen.add(key)
        if r["family"] not in (2, 10):
            raise ImageError("%s has family %d, not AF_INET or AF_INET6" % (what, r["family"]))
        alen = 4 if r["family"] == 2 else 16
        if len(r["local_addr"]) != alen or len(r["peer_addr"]) not in (0, alen):
            raise ImageError("%s has an address of the wrong length for its family" % what)
        k = sockets.get(key)
        if k is None:
            raise ImageError("%s names an fd that is not a socket" % what)
        if (k["family"], k["sock_type"]) != (r["family"], r["sock_type"]):
            raise ImageError("%s has another family or type than its fd" % what)
    for key, k in sockets.items():
        if k["family"] in (2, 10) and key not in seen:
            raise ImageError("fd %d of pid %d is an IPv4/IPv6 socket without its inet-sockets record" % (key[1], key[0]))
    # §8.15: each fd-shares group is two or more fds of the image, each in one group only, of one
    # kind, flags and offset (one open file description).
    fds_by_key = {(f["pid"], f["fd"]): f for f in d["fds"]}
    seen = set()
    for i, g in enumerate(d.get("fd-shares", [])):
        if len(g["fds"]) < 2:
            raise ImageError("fd-shares group %d has %d fd(s); a group has two or more" % (i, len(g["fds"])))
        first = None
        for m in g["fds"]:
            key = (m["pid"], m["fd"])
            if key in seen:
                raise ImageError("fd %d of pid %d is in the fd-shares section twice" % (key[1], key[0]))
            seen.add(key)
            f = fds_by_key.get(key)
            if f is None:
                raise ImageError("fd-shares group %d names fd %d of pid %d, which is not in the image" % (i, key[1], key[0]))
            if first is None:
                first = (key, f)
            elif (f["kind"]["variant"], f["flags"], f["pos"]) != (first[1]["kind"]["variant"], first[1]["flags"], first[1]["pos"]):
                raise ImageError(
                    "fd-shares group %d: fd %d of pid %d and fd %d of pid %d differ in kind, flags or offset, so they cannot be one open file description"
                    % (i, first[0][1], first[0][0], key[1], key[0])
                )
    # §8.17: a zombie's parent is a process of the image; its pid is nobody else's.
    zpids = set()
    for z in d.get("zombies", []):
        if z["pid"] in pids or z["pid"] in zpids:
            raise ImageError("the image lists pid %d twice (as a zombie and a process, or as two zombies)" % z["pid"])
        zpids.add(z["pid"])
        if z["ppid"] not in pids:
            raise ImageError("zombie %d has parent %d, which is not a process of the image" % (z["pid"], z["ppid"]))
        st_ = z["status"]
        if st_["variant"] == "Exited" and st_["code"] > 255:
            raise ImageError("zombie %d has exit code %d, which no process can end with" % (z["pid"], st_["code"]))
        if st_["variant"] == "Killed" and not 1 <= st_["signal"] <= 64:
            raise ImageError("zombie %d has signal %d, which no process can end with" % (z["pid"], st_["signal"]))
    # §8.18: every AIO context is consistent in itself and overlaps no other mapping of its process.
    pids = {p["pid"] for p in d["processes"]}
    for a in d.get("aio", []):
        pid, ring, length, nr, head, tail = (a[k] for k in ("pid", "ring", "ring_len", "nr_events", "head", "tail"))
        what = "AIO context %#x of pid %d" % (ring, pid)
        if pid not in pids:
            raise ImageError("%s: pid %d is not in the image" % (what, pid))
        if ring % PAGE_SIZE or length == 0 or length % PAGE_SIZE:
            raise ImageError("%s: the ring %#x+%#x is not whole pages" % (what, ring, length))
        if nr != (length - 32) // 32:
            raise ImageError("%s: %d event slots do not fill a %d-byte ring" % (what, nr, length))
        if head >= nr or tail >= nr:
            raise ImageError("%s: head %d or tail %d is not below nr_events %d" % (what, head, tail, nr))
        if len(a["events"]) != 32 * ((tail - head) % nr):
            raise ImageError("%s: %d bytes of events for the slots from head %d to tail %d" % (what, len(a["events"]), head, tail))
        others = [(v["start"], v["end"]) for v in d["vmas"] if v["pid"] == pid]
        others += [(o["ring"], o["ring"] + o["ring_len"]) for o in d["aio"] if o["pid"] == pid and o is not a]
        if any(s < ring + length and ring < e for s, e in others):
            raise ImageError("%s overlaps another mapping of its process" % what)
    # §8.16: a shared anonymous vma is mapped by at most one object; runs inside the object and
    # inside the page data.
    shared_vmas = {(v["pid"], v["start"]) for v in d["vmas"] if v["shared"] and v["kind"]["variant"] == "Anonymous"}
    seen = set()
    for i, o in enumerate(d.get("shared-memory", [])):
        if o["size"] % PAGE_SIZE:
            raise ImageError("shared memory object %d has a size of %d bytes, not a multiple of 4096" % (i, o["size"]))
        prev = 0
        for r in o["pages"]:
            end = r["offset"] + r["pages"] * PAGE_SIZE
            if r["pages"] == 0 or r["offset"] % PAGE_SIZE or r["offset"] < prev or end > o["size"]:
                raise ImageError("page run %#x of shared memory object %d is empty, unaligned, overlapping or outside it" % (r["offset"], i))
            prev = end
            data_end = r["data_offset"] + r["pages"] * PAGE_SIZE
            if r["data_offset"] % PAGE_SIZE or data_end > len(page_data):
                raise ImageError("page run %#x of shared memory object %d: bytes %#x..%#x outside the page data" % (r["offset"], i, r["data_offset"], data_end))
        for m in o["mappings"]:
            key = (m["pid"], m["start"])
            if key not in shared_vmas:
                raise ImageError("shared memory object %d is mapped at %#x of pid %d, which is not a shared anonymous vma" % (i, m["start"], m["pid"]))
            if key in seen:
                raise ImageError("the vma %#x of pid %d maps two shared memory objects" % (m["start"], m["pid"]))
            seen.add(key)
    # §8.9: a memfd fd names a memfd object whose size is its own rounded up to a page.
    objects = d.get("shared-memory", [])
    for f in d["fds"]:
        if f["kind"]["variant"] != "MemFdObject":
            continue
        k, at = f["kind"], "the memfd fd %d of pid %d" % (f["fd"], f["pid"])
        if k["object"] >= len(objects):
            raise ImageError("%s names shared memory object %d, but the image has %d" % (at, k["object"], len(objects)))
        o = objects[k["object"]]
        if o["kind"]["variant"] != "Memfd":
            raise ImageError("%s names shared memory object %d, which is not a memfd" % (at, k["object"]))
        if (k["size"] + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE != o["size"]:
            raise ImageError("%s has a size of %d bytes, which does not round up to the size %#x of its shared memory object %d" % (at, k["size"], o["size"], k["object"]))
    # §8.21: every pty pair names its own fds: masters of its index, slaves of device 136:index.
    kinds = {(f["pid"], f["fd"]): f["kind"] for f in d["fds"]}
    seen = set()
    for t in d.get("ttys", []):
        what = "pty %d" % t["index"]
        if t["index"] in seen:
            raise ImageError("%s: two records" % what)
        seen.add(t["index"])
        if len(t["termios"]) != 36 or len(t["winsize"]) != 8:
            raise ImageError("%s: %d termios bytes and %d winsize bytes (36 and 8 expected)" % (what, len(t["termios"]), len(t["winsize"])))
        if not t["masters"]:
            raise ImageError("%s: no master fd" % what)
        for m in t["masters"]:
            k = kinds.get((m["pid"], m["fd"]))
            if not k or k["variant"] != "PtyMaster" or k["index"] != t["index"]:
                raise ImageError("%s: fd %d of pid %d is not its master in the fds section" % (what, m["fd"], m["pid"]))
        for m in t["slaves"]:
            k = kinds.get((m["pid"], m["fd"]))
            if not k or k["variant"] != "Tty" or k["rdev"] != pts_rdev(t["index"]):
                raise ImageError("%s: fd %d of pid %d is not its slave in the fds section" % (what, m["fd"], m["pid"]))
        if t["session"] and not any(p["pid"] == t["session"] == p["sid"] for p in d["processes"]):
            raise ImageError("%s: session %d is not a session leader of the image" % (what, t["session"]))
    for (pid, fd), k in kinds.items():
        if k["variant"] == "PtyMaster" and not any(
            t["index"] == k["index"] and {"pid": pid, "fd": fd} in t["masters"] for t in d.get("ttys", [])
        ):
            raise ImageError("fd %d of pid %d is the master of pty %d, which has no record in the ttys section" % (fd, pid, k["index"]))
    # §8.20: every AF_UNIX socket fd has exactly one unix-sockets record, with its inode and type,
    # and a connected socket's peer is a socket of the image connected back to it.
    unix_fds = {(f["pid"], f["fd"]): f["kind"] for f in d["fds"] if f["kind"]["variant"] == "Socket" and f["kind"]["family"] == 1}
    seen = {}
    for u in d.get("unix-sockets", []):
        key = (u["pid"], u["fd"])
        if key in seen:
            raise ImageError("the unix-sockets record of pid %d fd %d appears twice" % key)
        k = unix_fds.get(key)
        if k is None:
            raise ImageError("the unix-sockets record of pid %d fd %d is for an fd that is not a unix socket" % key)
        if (k["ino"], k["sock_type"]) != (u["ino"], u["sock_type"]):
            raise ImageError("the unix-sockets record of pid %d fd %d disagrees with its fd's inode or type" % key)
        seen[key] = u
    for key in unix_fds:
        if key not in seen:
            raise ImageError("fd %d of pid %d is a unix socket without its unix-sockets record" % (key[1], key[0]))
    peers = {u["ino"]: u["peer_ino"] for u in seen.values()}
    # §8.23: a socket whose peer is outside the image has one unix-peers record, and only then
    # may its peer be no socket of the image.
    outside = set()
    for r in d.get("unix-peers", []):
        if r["ino"] in outside:
            raise ImageError("the unix-peers record of socket:[%d] appears twice" % r["ino"])
        if not r["peer_ino"] or peers.get(r["ino"]) != r["peer_ino"]:
            raise ImageError("the unix-peers record of socket:[%d] names no unix socket of the image connected to socket:[%d]" % (r["ino"], r["peer_ino"]))
        if r["peer_ino"] in peers:
            raise ImageError("the unix-peers record of socket:[%d] says its peer socket:[%d] is outside the image, but it is a socket of the image" % (r["ino"], r["peer_ino"]))
        outside.add(r["ino"])
    for ino, peer in peers.items():
        if peer and ino not in outside and peers.get(peer) != ino:
            raise ImageError("unix socket socket:[%d] is connected to socket:[%d], which is not a unix socket of the image connected back to it" % (ino, peer))


def check_parent_files(d):
    """§8.24: the `files` entries of the parent section are valid indexes of `files`, each once.

    Returns the set of those indexes (empty for a full image)."""
    parent = d.get("parent")
    if parent is None:
        return set()
    seen = set()
    for i in parent["files"]:
        if i >= len(d["files"]):
            raise ImageError("the parent section lists stored file %d, the image stores %d" % (i, len(d["files"])))
        if i in seen:
            raise ImageError("the parent section lists stored file %d twice" % i)
        seen.add(i)
    return seen


def check_parent_runs(d, pids):
    """§8.24: parent runs are sorted by (pid, addr), page-aligned, at least one page, of a process
    of the image, overlap neither each other nor the process's own page-index runs, and every
    page lies inside a VMA of the process (a run may span adjacent VMAs)."""
    parent = d.get("parent")
    if parent is None:
        return
    prev = None  # (pid, addr, end) of the previous run
    for r in parent["pages"]:
        pid, addr, n = r["pid"], r["addr"], r["pages"]
        what = "parent run %#x+%d pages of pid %d" % (addr, n, pid)
        if pid not in pids:
            raise ImageError("%s: pid %d is not in the image" % (what, pid))
        if addr % PAGE_SIZE or n == 0:
            raise ImageError("%s is unaligned or empty" % what)
        end = addr + n * PAGE_SIZE
        if prev is not None and (pid, addr) < prev[:2]:
            raise ImageError("%s is out of order: parent runs are sorted by (pid, addr)" % what)
        if prev is not None and pid == prev[0] and addr < prev[2]:
            raise ImageError("%s overlaps the previous parent run" % what)
        prev = (pid, addr, end)
        for own in d["page-index"]:
            if own["pid"] == pid and own["addr"] < end and addr < own["addr"] + own["pages"] * PAGE_SIZE:
                raise ImageError("%s overlaps the page-index run %#x+%d pages of its process" % (what, own["addr"], own["pages"]))
        # Every page inside a VMA: walk the sorted VMAs of the process from addr to end.
        at = addr
        for v in sorted((v for v in d["vmas"] if v["pid"] == pid), key=lambda v: v["start"]):
            if v["start"] <= at < v["end"]:
                at = v["end"]
            if at >= end:
                break
        if at < end:
            raise ImageError("%s: the page at %#x lies in no VMA of the process" % (what, at))


def pts_rdev(index):
    """The st_rdev of /dev/pts/INDEX: makedev(136, INDEX) (§8.21)."""
    major = 136
    return ((major & 0xFFF) << 8) | ((major & ~0xFFF) << 32) | (index & 0xFF) | ((index & ~0xFF) << 12)


# ---------------------------------------------------------------------------------------------
# Output

PROT = lambda p: ("r" if p & 1 else "-") + ("w" if p & 2 else "-") + ("x" if p & 4 else "-")  # noqa: E731
X86_64_REGS = (
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
    "fs_base gs_base ds es fs gs"
).split()
I386_REGS = "ebx ecx edx esi edi ebp eax xds xes xfs xgs orig_eax eip xcs eflags esp xss".split()


def named_regs(regs):
    names = X86_64_REGS if regs["variant"] == "X86_64" else I386_REGS
    return dict(zip(names, regs["value"]))


def summary(img):
    """A plain-data summary (what --json prints)."""
    h, d = img["header"], img["decoded"]
    ident = d["identity"]
    in_parent = set(d["parent"]["files"]) if "parent" in d else set()
    procs = []
    for p in d["processes"]:
        pid = p["pid"]
        threads = []
        for t in d["threads"]:
            if t["pid"] != pid:
                continue
            regs = named_regs(t["regs"])
            threads.append(
                {
                    "tid": t["tid"],
                    "comm": t["comm"],
                    "regs_layout": t["regs"]["variant"],
                    "ip": regs.get("rip", regs.get("eip")),
                    "sp": regs.get("rsp", regs.get("esp")),
                    "regs": regs,
                    "xsave_len": len(t["xsave"]),
                    "xstate_bv": t["xstate_bv"],
                    "sigmask": t["sigmask"],
                    "pending": [s["signo"] for s in t["pending"]],
                    "restart": t["restart"],
                }
            )
        vmas = [
            {
                "start": v["start"],
                "end": v["end"],
                "prot": PROT(v["prot"]),
                "shared": v["shared"],
                "kind": v["kind"]["variant"],
                "file": v["file"]["path"] if v["file"] else None,
                "file_offset": v["file_offset"],
                "vm_flags": v["vm_flags"],
            }
            for v in d["vmas"]
            if v["pid"] == pid
        ]
        runs = [
            {"addr": r["addr"], "pages": r["pages"], "data_offset": r["data_offset"]}
            for r in d["page-index"]
            if r["pid"] == pid
        ]
        parent_runs = [
            {"addr": r["addr"], "pages": r["pages"]} for r in (d["parent"]["pages"] if "parent" in d else []) if r["pid"] == pid
        ]
        fds = [
            {"fd": f["fd"], "kind": f["kind"]["variant"], "flags": f["flags"], "cloexec": f["cloexec"], "pos": f["pos"]}
            for f in d["fds"]
            if f["pid"] == pid
        ]
        for f, raw in zip(fds, [f for f in d["fds"] if f["pid"] == pid]):
            if f["kind"] == "MemFdObject":
                f["object"], f["size"] = raw["kind"]["object"], raw["kind"]["size"]
        for f in fds:
            if f["kind"] == "Epoll":
                recs = [r for r in d.get("epoll", []) if (r["pid"], r["fd"]) == (pid, f["fd"])]
                f["watches"] = recs[0]["watches"] if recs else []
            recs = [r for r in d.get("event-fds", []) if (r["pid"], r["fd"]) == (pid, f["fd"])]
            if recs:
                f["state"] = {k: v for k, v in recs[0]["state"].items() if k != "variant"}
        sig = [s for s in d["signals"] if s["pid"] == pid]
        procs.append(
            {
                "pid": pid,
                "ppid": p["ppid"],
                "pgid": p["pgid"],
                "sid": p["sid"],
                "arch": p["arch"]["variant"],
                "comm": p["comm"],
                "cmdline": [a.decode("utf-8", "replace") for a in p["cmdline"].split(b"\0") if a],
                "uids": p["creds"]["uids"],
                "cwd": p["cwd"],
                "exe": p["exe"]["path"],
                "exe_stored": p["exe"]["stored"],
                "mm": p["mm"],
                "threads": threads,
                "vmas": vmas,
                "page_runs": runs,
                "stored_pages": sum(r["pages"] for r in runs),
                "parent_runs": parent_runs,
                "parent_pages": sum(r["pages"] for r in parent_runs),
                "fds": fds,
                "aio": [
                    {k: a[k] for k in ("ring", "ring_len", "nr_events", "head", "tail")} | {"completed_events": len(a["events"]) // 32}
                    for a in d.get("aio", [])
                    if a["pid"] == pid
                ],
                "handled_signals": [i + 1 for s in sig for i, a in enumerate(s["actions"]) if a["handler"] > 1],
            }
        )
    return {
        "format_version": "%d.%d" % (h["major"], h["minor"]),
        "layout_class": h["class_bits"],
        "streamed": h["streamed"],
        "chunk_size": 1 << h["chunk_shift"],
        "size": img["size"],
        "image_sha256": img["trailer"]["image_sha256"].hex(),
        "sections": [
            {
                "index": e["index"],
                "kind": e["kind"],
                "name": e["name"],
                "version": e["version"],
                "flags": flag_names(e["flags"]),
                "offset": e["offset"],
                "length": e["length"],
                "sha256": e["sha256"].hex(),
                "digest_ok": e.get("digest_ok", False),
                "status": e["status"],
            }
            for e in img["sections"]
        ],
        "identity": {
            "tool_version": ident["tool_version"],
            "created_ns": ident["created_ns"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ident["created_ns"] // 10**9)),
            "host": ident["host"],
            "capture_uid": ident["capture_uid"],
            "capture_gid": ident["capture_gid"],
            "capture_cmdline": ident["capture_cmdline"],
        },
        "processes": procs,
        "fd_shares": [[{"pid": m["pid"], "fd": m["fd"]} for m in g["fds"]] for g in d.get("fd-shares", [])],
        "zombies": [
            {"pid": z["pid"], "ppid": z["ppid"], "pgid": z["pgid"], "sid": z["sid"], "status": exit_status(z["status"])}
            for z in d.get("zombies", [])
        ],
        "ptys": [
            {
                "index": t["index"],
                "rows_cols": struct.unpack("<HH", t["winsize"][:4]),
                "masters": [(m["pid"], m["fd"]) for m in t["masters"]],
                "slaves": [(m["pid"], m["fd"]) for m in t["slaves"]],
                "session": t["session"],
                "foreground": t["foreground"],
            }
            for t in d.get("ttys", [])
        ],
        "files": [
            {
                "index": i,
                "path": f["path"],
                "size": f["size"],
                "data_offset": f["data_offset"],
                "sha256": f["sha256"].hex(),
                "in_parent": i in in_parent,
            }
            for i, f in enumerate(d["files"])
        ],
        "parent": parent_summary(img),
        "shared_memory": [
            {
                "index": i,
                "kind": o["kind"]["variant"],
                "dev": o["dev"],
                "ino": o["ino"],
                "size": o["size"],
                "pages": sum(r["pages"] for r in o["pages"]),
                "runs": [{"offset": r["offset"], "pages": r["pages"], "data_offset": r["data_offset"]} for r in o["pages"]],
                "mappings": [{"pid": m["pid"], "start": m["start"]} for m in o["mappings"]],
            }
            for i, o in enumerate(d.get("shared-memory", []))
        ],
    }


def parent_summary(img):
    """The parent section (§8.24) of an incremental image, None for a full one; `chain` says what
    read_chain took from the parent chain (None when the image was read alone)."""
    p = img["decoded"].get("parent")
    if p is None:
        return None
    c = img.get("chain")
    return {
        "digest": p["digest"].hex(),
        "path": p["path"],
        "page_runs": len(p["pages"]),
        "pages": sum(r["pages"] for r in p["pages"]),
        "files": list(p["files"]),
        "chain": None
        if c is None
        else {
            "found_at": c["parent"],
            "images": c["images"],
            "pages_from_chain": c["pages_from_chain"],
            "files_from_chain": c["files_from_chain"],
        },
    }


def exit_status(st_):
    """An ExitStatusV1 (§8.17) as imgtool prints it: `exit 7`, `killed by signal 15 (core dumped)`."""
    if st_["variant"] == "Exited":
        return "exit %d" % st_["code"]
    return "killed by signal %d%s" % (st_["signal"], " (core dumped)" if st_["core"] else "")


def flag_names(flags):
    names = [n for bit, n in ((SECTION_CRITICAL, "critical"), (SECTION_SAFE_TO_COPY, "safe-to-copy"), (SECTION_CHUNKED, "chunked")) if flags & bit]
    rest = flags & ~(SECTION_CRITICAL | SECTION_SAFE_TO_COPY | SECTION_CHUNKED)
    if rest:
        names.append("%#x" % rest)
    return names


def print_summary(s, out):
    w = out.write
    w(
        "psnc-cr image %s, %d-bit layout class, %s, %d bytes, chunk size %d\n"
        % (s["format_version"], s["layout_class"], "streamed" if s["streamed"] else "seekable", s["size"], s["chunk_size"])
    )
    w("image digest ok  %s\n" % s["image_sha256"])
    w("sections:\n")
    w("  %3s %-15s %3s %-22s %10s %10s  %s\n" % ("#", "kind", "ver", "flags", "offset", "length", "digest"))
    for e in s["sections"]:
        w(
            "  %3d %-15s %3d %-22s %#10x %10d  %s %s\n"
            % (e["index"], e["name"], e["version"], ",".join(e["flags"]), e["offset"], e["length"], "ok" if e["digest_ok"] else "--", e["sha256"][:16])
        )
    pa = s["parent"]
    if pa is not None:
        w(
            "parent %s (recorded path %s): %d page runs (%d pages), %d stored files from it\n"
            % (pa["digest"], pa["path"], pa["page_runs"], pa["pages"], len(pa["files"]))
        )
        c = pa["chain"]
        if c is None:
            w("  parent chain not read\n")
        else:
            w(
                "  parent chain ok: %s; %d pages and %d stored files taken from it\n"
                % (" <- ".join(c["images"]), c["pages_from_chain"], c["files_from_chain"])
            )
    i = s["identity"]
    hst = i["host"]
    w(
        "identity: tool %s, created %s, host %s (%s %s, %s %s)\n"
        % (i["tool_version"], i["created"], hst["hostname"], hst["kernel_release"], hst["machine"], hst["cpu_vendor"], hst["cpu_model"])
    )
    for p in s["processes"]:
        w(
            "process %d (%s) ppid %d pgid %d sid %d, %s, exe %s, cmdline %s\n"
            % (p["pid"], p["comm"], p["ppid"], p["pgid"], p["sid"], p["arch"], p["exe"], " ".join(p["cmdline"]))
        )
        for t in p["threads"]:
            w("  thread %d (%s): %s ip %#x sp %#x\n" % (t["tid"], t["comm"], t["regs_layout"], t["ip"], t["sp"]))
        w("  %d vmas:\n" % len(p["vmas"]))
        for v in p["vmas"]:
            w(
                "    %#x-%#x %s%s %-10s %s\n"
                % (v["start"], v["end"], v["prot"], "s" if v["shared"] else "p", v["kind"], ("%s @%#x" % (v["file"], v["file_offset"])) if v["file"] else "")
            )
        w("  %d page runs, %d pages stored:\n" % (len(p["page_runs"]), p["stored_pages"]))
        for r in p["page_runs"]:
            w("    %#x +%d pages at page-data %#x\n" % (r["addr"], r["pages"], r["data_offset"]))
        if p["parent_runs"]:
            w("  %d parent runs, %d pages from the parent:\n" % (len(p["parent_runs"]), p["parent_pages"]))
            for r in p["parent_runs"]:
                w("    %#x +%d pages from the parent\n" % (r["addr"], r["pages"]))
        w("  fds: %s\n" % ", ".join("%d %s" % (f["fd"], f["kind"]) for f in p["fds"]))
        for f in (f for f in p["fds"] if f["kind"] == "Epoll"):
            w(
                "  epoll fd %d watches: %s\n"
                % (f["fd"], ", ".join("fd %d events %#x data %#x" % (x["tfd"], x["events"], x["data"]) for x in f["watches"]) or "none")
            )
        for f in (f for f in p["fds"] if "state" in f):
            st_ = f["state"]
            if f["kind"] == "Inotify":
                st_ = {"watches": ", ".join("wd %d mask %#x %s" % (x["wd"], x["mask"], x["path"]) for x in st_["watches"]) or "none"}
            w("  %s fd %d: %s\n" % (f["kind"].lower(), f["fd"], ", ".join("%s %s" % kv for kv in st_.items())))
        w("  handled signals: %s\n" % ", ".join(str(n) for n in p["handled_signals"]))
    for g in s["fd_shares"]:
        w("one open file description: %s\n" % ", ".join("pid %d fd %d" % (m["pid"], m["fd"]) for m in g))
    for z in s["zombies"]:
        w("zombie %d <defunct> ppid %d pgid %d sid %d, %s\n" % (z["pid"], z["ppid"], z["pgid"], z["sid"], z["status"]))
    for o in s["shared_memory"]:
        w(
            "shared memory object %d (%s): %d bytes, %d pages stored, mapped by %s\n"
            % (o["index"], o["kind"], o["size"], o["pages"], ", ".join("pid %d at %#x" % (m["pid"], m["start"]) for m in o["mappings"]))
        )
    for t in s["ptys"]:
        w(
            "pty %d %dx%d masters %s slaves %s session %d foreground %d\n"
            % (
                t["index"],
                t["rows_cols"][0],
                t["rows_cols"][1],
                ", ".join("pid %d fd %d" % m for m in t["masters"]) or "none",
                ", ".join("pid %d fd %d" % m for m in t["slaves"]) or "none",
                t["session"],
                t["foreground"],
            )
        )
    w("%d stored files:\n" % len(s["files"]))
    for f in s["files"]:
        where = "in the parent chain" if f["in_parent"] else "at file-data %#x" % f["data_offset"]
        w("  %d %s %d bytes %s sha256 %s\n" % (f["index"], f["path"], f["size"], where, f["sha256"][:16]))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Read and verify a psnc-cr image (independent reader of spec/FORMAT.md).")
    ap.add_argument("image", help="the image file")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    chain = ap.add_mutually_exclusive_group()
    chain.add_argument("--parent", metavar="PARENT", help="where the parent of an incremental image is (§8.24)")
    chain.add_argument("--no-chain", action="store_true", help="read an incremental image alone, without its parent chain")
    args = ap.parse_args(argv)
    try:
        with open(args.image, "rb") as f:
            data = f.read()
    except OSError as e:
        print("psnc_reader: cannot read %s: %s" % (args.image, e), file=sys.stderr)
        return 2
    try:
        img = read_image(data) if args.no_chain else read_chain(args.image, args.parent, data)
    except ImageError as e:
        print("psnc_reader: %s: invalid image: %s" % (args.image, e), file=sys.stderr)
        return 1
    s = summary(img)
    try:
        if args.json:
            json.dump(s, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_summary(s, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of the image.
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
