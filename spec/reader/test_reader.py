"""Checks spec/FORMAT.md against the code: the independent reader on the example images.

Run from the repository root: python3 -m unittest discover -s spec/reader -v
"""

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import psnc_reader as r

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "spec", "examples")
GOLDEN = os.path.join(ROOT, "crates", "format", "tests", "golden")
SPEC = os.path.join(ROOT, "spec", "FORMAT.md")
READER = os.path.join(HERE, "psnc_reader.py")

# file -> (class bits, arch, first VMA start, instruction pointer register, its value)
EXPECTED = {
    "example-64.psnc": (64, "X86_64", 0x400000, "rip", 0x401000),
    "example-32.psnc": (32, "I386", 0x08048000, "eip", 0x08049000),
}


# incremental example -> its parent, in the same directory (§14)
INCREMENTAL = {
    "example-incremental-64.psnc": "example-64.psnc",
    "example-incremental-32.psnc": "example-32.psnc",
}


def load(name, directory=EXAMPLES):
    with open(os.path.join(directory, name), "rb") as f:
        return f.read()


def run_cli(*args):
    return subprocess.run([sys.executable, READER, *args], capture_output=True, text=True)


def reseal(data):
    """Recomputes the image digest after a test edited the header or the table (§9)."""
    data = bytearray(data)
    h = r.parse_header(bytes(data[:32]))
    t = r.parse_trailer(data, h)
    _, start, end = r.parse_table(data, h, t)
    digest = r.image_digest(data, h, t, start, end)
    data[t["offset"] + 2 * h["word"] : t["offset"] + 2 * h["word"] + 32] = digest
    return bytes(data)


def table_entry_offset(data, index):
    h = r.parse_header(data[:32])
    t = r.parse_trailer(data, h)
    return t["table_offset"] + index * (8 + 2 * h["word"] + 32)


class ExampleImages(unittest.TestCase):
    def test_cli_decodes_both_examples(self):
        for name, (bits, arch, vma0, ip_name, ip) in EXPECTED.items():
            with self.subTest(image=name):
                out = run_cli(os.path.join(EXAMPLES, name), "--json")
                self.assertEqual(out.returncode, 0, out.stderr)
                s = json.loads(out.stdout)
                self.assertEqual(s["format_version"], "1.4")
                self.assertEqual(s["layout_class"], bits)
                self.assertTrue(s["streamed"])
                self.assertEqual(len(s["sections"]), 15)
                self.assertTrue(all(e["digest_ok"] for e in s["sections"]))
                self.assertEqual(s["identity"]["created"], "2026-01-01T00:00:00Z")
                self.assertEqual(len(s["processes"]), 1)
                p = s["processes"][0]
                self.assertEqual((p["pid"], p["comm"], p["arch"]), (42, "example", arch))
                self.assertEqual(p["cmdline"], ["example", "--count"])
                self.assertEqual(len(p["vmas"]), 7)
                self.assertEqual(p["vmas"][0]["start"], vma0)
                self.assertEqual(p["vmas"][0]["file"], "/usr/bin/example")
                self.assertEqual(len(p["page_runs"]), 5)
                self.assertEqual(p["stored_pages"], 6)
                self.assertEqual(len(p["threads"]), 1)
                t = p["threads"][0]
                self.assertEqual(t["tid"], 42)
                self.assertEqual(t["regs"][ip_name], ip)
                self.assertEqual(t["restart"], {"variant": "Reissue", "nr": 35, "code": -516})
                self.assertEqual([f["fd"] for f in p["fds"]], [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
                # fd 12 is a dup of fd 3: one open file description (§8.15).
                self.assertEqual(s["fd_shares"], [[{"pid": 42, "fd": 3}, {"pid": 42, "fd": 12}]])
                self.assertEqual((p["fds"][11]["pos"], p["fds"][11]["flags"]), (p["fds"][2]["pos"], p["fds"][2]["flags"]))
                self.assertEqual(p["fds"][6]["kind"], "Epoll")
                self.assertEqual(
                    p["fds"][6]["watches"],
                    [
                        {"tfd": 4, "events": 0x1, "data": 0x1122334455667788},
                        {"tfd": 3, "events": 0x80000005, "data": 3},
                    ],
                )
                self.assertEqual(p["handled_signals"], [10])
                self.assertEqual(p["exe_stored"], 0)
                self.assertEqual(len(s["files"]), 1)
                self.assertEqual(s["files"][0]["size"], 8192)

    def test_deep_fields_match_the_synthetic_example(self):
        # The values psnc_format::example::example_checkpoint puts in, reached through every
        # kind of wire type: class-width words, zigzag, options, enums, fixed arrays, nesting.
        layouts = {
            "example-64.psnc": (0x400000, 0x7FFC00000000, 24, 0, 48),
            "example-32.psnc": (0x08048000, 0xFFD00000, 12, 1, 24),
        }
        for name, (base, stack, robust_len, ntls, auxv_len) in layouts.items():
            with self.subTest(image=name):
                d = r.read_image(load(name))["decoded"]
                ident = d["identity"]
                self.assertEqual(ident["host"]["cpu_flags"], ["avx", "avx2", "sse2"])
                self.assertEqual(ident["host"]["xsave_size"], 832)
                self.assertEqual(ident["capture_cmdline"], ["psnc-capture", "42", "-o", "example.psnc"])
                p = d["processes"][0]
                self.assertEqual(p["creds"]["groups"], [1000, 27])
                self.assertEqual(p["rlimits"][0], {"cur": 8 << 20, "max": 2**64 - 1})
                self.assertEqual((p["mm"]["brk"], p["mm"]["start_stack"]), (base + 0x6000, stack + 0xF00))
                self.assertEqual(len(p["auxv"]), auxv_len)
                self.assertEqual(p["exe"]["identity"]["mtime_ns"], 1_700_000_000_000_000_000)
                t = d["threads"][0]
                self.assertEqual((len(t["xsave"]), t["xstate_bv"]), (576, 3))
                self.assertEqual(len(t["tls"]), ntls)
                self.assertEqual((t["pending"][0]["signo"], t["pending"][0]["code"], len(t["pending"][0]["raw"])), (10, -1, 128))
                self.assertEqual(t["sigaltstack"], {"sp": base + 0x8000, "flags": 0, "size": 0x2000})
                self.assertEqual((t["clear_child_tid"], t["robust_list_len"]), (base + 0x3050, robust_len))
                self.assertEqual(t["rseq"], {"addr": base + 0x3080, "len": 32, "sig": 0x53053053, "flags": 0})
                kinds = [v["kind"]["variant"] for v in d["vmas"]]
                self.assertEqual(kinds.count("File"), 2)
                self.assertIn("Heap", kinds)
                anon = next(v for v in d["vmas"] if v["kind"]["variant"] == "Anonymous")
                self.assertEqual(anon["vm_flags"], 1 << 2)  # dd: MADV_DONTDUMP
                fds = {f["fd"]: f for f in d["fds"]}
                self.assertEqual(fds[3]["kind"]["value"]["path"], "/tmp/example.log")
                self.assertEqual((fds[3]["pos"], fds[3]["cloexec"], fds[3]["flags"]), (4100, True, 0o2001))
                self.assertEqual(fds[4]["kind"]["value"]["buffered"], b"unread")
                self.assertEqual(fds[1]["kind"], {"variant": "CharDevice", "path": "/dev/null", "rdev": 0x103})
                s = d["signals"][0]
                self.assertEqual(len(s["actions"]), 64)
                self.assertEqual(
                    s["actions"][9], {"handler": base + 0x1100, "flags": 0x04000004, "restorer": base + 0x1200, "mask": 1 << 14}
                )
                self.assertEqual(s["itimers"][0], {"value_us": 250_000, "interval_us": 500_000})
                self.assertEqual((s["posix_timers"][0]["signo"], s["posix_timers"][0]["sigev_value"]), (14, 7))
                self.assertEqual(s["shared_pending"][0]["signo"], 12)

    def test_cli_prints_a_summary(self):
        out = run_cli(os.path.join(EXAMPLES, "example-32.psnc"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("32-bit layout class", out.stdout)
        self.assertIn("process 42 (example)", out.stdout)
        self.assertIn("ip 0x8049000", out.stdout)

    def test_digests_agree_with_an_independent_computation(self):
        for name in EXPECTED:
            with self.subTest(image=name):
                data = load(name)
                img = r.read_image(data)
                chunk = 1 << img["header"]["chunk_shift"]
                self.assertEqual(chunk, 1 << 20)
                for e in img["sections"]:
                    body = data[e["offset"] : e["offset"] + e["length"]]
                    if e["flags"] & r.SECTION_CHUNKED:
                        ds = b"".join(hashlib.sha256(body[i : i + chunk]).digest() for i in range(0, len(body), chunk))
                        want = hashlib.sha256(ds).digest()
                    else:
                        want = hashlib.sha256(body).digest()
                    self.assertEqual(e["sha256"], want, e["name"])
                # Two chunk-digest lists, one per chunked section, matching the chunks.
                kinds = sorted(cl["section_kind"] for cl in img["chunk_digests"])
                self.assertEqual(kinds, [6, 8])

    def test_32_and_64_bit_classes_differ_where_the_spec_says(self):
        a = r.read_image(load("example-32.psnc"))
        b = r.read_image(load("example-64.psnc"))
        self.assertEqual((a["header"]["word"], b["header"]["word"]), (4, 8))
        self.assertEqual((a["trailer"]["size"], b["trailer"]["size"]), (48, 56))
        pi = lambda img: next(e for e in img["sections"] if e["name"] == "page-index")  # noqa: E731
        self.assertEqual((pi(a)["length"], pi(b)["length"]), (5 * 20, 5 * 32))
        # The identity section has no class-width field: identical bytes in both classes.
        ida = next(e for e in a["sections"] if e["name"] == "identity")
        idb = next(e for e in b["sections"] if e["name"] == "identity")
        self.assertEqual(ida["sha256"], idb["sha256"])

    def test_golden_images_decode(self):
        versions = sorted(os.listdir(GOLDEN)) if os.path.isdir(GOLDEN) else []
        versions = [v for v in versions if v.startswith("v")]
        self.assertIn("v1.0", versions)
        self.assertIn("v1.1", versions)
        self.assertIn("v1.2", versions)
        self.assertIn("v1.3", versions)
        self.assertIn("v1.4", versions)
        for v in versions:
            for name, (bits, _, vma0, _, _) in EXPECTED.items():
                with self.subTest(version=v, image=name):
                    img = r.read_image(load(name, os.path.join(GOLDEN, v)))
                    self.assertEqual(img["header"]["class_bits"], bits)
                    self.assertEqual(img["decoded"]["processes"][0]["pid"], 42)
                    self.assertEqual(img["decoded"]["vmas"][0]["start"], vma0)
                    self.assertNotIn("parent", img["decoded"])
        # v1.4 also holds the incremental examples (§14), next to their parents.
        for name, parent in INCREMENTAL.items():
            with self.subTest(version="v1.4", image=name):
                img = r.read_chain(os.path.join(GOLDEN, "v1.4", name))
                self.assertEqual(img["chain"]["images"], [os.path.join(GOLDEN, "v1.4", parent)])
                self.assertEqual(img["chain"]["pages_from_chain"], 5)


class Corruption(unittest.TestCase):
    def assertRefused(self, data, pattern):
        with self.assertRaisesRegex(r.ImageError, pattern):
            r.read_image(data)

    def test_a_flipped_byte_anywhere_is_detected(self):
        for name in ("example-32.psnc", "example-incremental-64.psnc"):
            data = load(name)
            img = r.read_image(data)
            spots = [("header", 0x10), ("padding", 0x20), ("table", img["trailer"]["table_offset"] + 20)]
            spots += [("image digest", img["trailer"]["offset"] + 8)]
            spots += [(e["name"], e["offset"] + e["length"] // 2) for e in img["sections"]]
            for what, at in spots:
                with self.subTest(image=name, what=what, offset=hex(at)):
                    bad = bytearray(data)
                    bad[at] ^= 0x01
                    self.assertRaises(r.ImageError, r.read_image, bytes(bad))

    def test_the_cli_names_a_corrupt_section(self):
        data = bytearray(load("example-64.psnc"))
        img = r.read_image(bytes(data))
        vmas = next(e for e in img["sections"] if e["name"] == "vmas")
        data[vmas["offset"] + 3] ^= 0x80
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "psnc-reader-test-%d.psnc" % os.getpid())
        try:
            with open(path, "wb") as f:
                f.write(data)
            out = run_cli(path)
        finally:
            os.unlink(path)
        self.assertEqual(out.returncode, 1)
        self.assertIn("digest mismatch in section 5 (vmas)", out.stderr)

    def test_truncation_wrong_magic_and_newer_major_are_refused(self):
        data = load("example-32.psnc")
        self.assertRefused(data[:-1], "no trailer")
        self.assertRefused(data[:20], "truncated")
        self.assertRefused(b"\x7fELF" + data[4:], "not a psnc-cr image")
        newer = bytearray(data)
        newer[8:10] = struct.pack("<H", 2)
        self.assertRefused(bytes(newer), r"version 2\.4 is not supported: this reader supports major version 1")

    def test_unknown_sections_critical_refused_ancillary_skipped(self):
        data = load("example-32.psnc")
        at = table_entry_offset(data, 12)  # the first chunk-digests section
        for flags, refused in ((r.SECTION_CRITICAL, True), (r.SECTION_SAFE_TO_COPY, False), (0, False)):
            with self.subTest(flags=flags):
                bad = bytearray(data)
                bad[at : at + 8] = struct.pack("<IHH", 0x7777, 1, flags)
                bad = reseal(bad)
                if refused:
                    self.assertRefused(bad, "unknown critical kind 0x7777")
                else:
                    img = r.read_image(bad)
                    self.assertEqual(img["sections"][12]["status"], "unknown, skipped")
                    self.assertTrue(img["sections"][12]["digest_ok"])

    def test_newer_section_version_critical_refused(self):
        data = load("example-64.psnc")
        bad = bytearray(data)
        at = table_entry_offset(data, 5)  # vmas
        bad[at + 4 : at + 6] = struct.pack("<H", 2)
        self.assertRefused(reseal(bad), "section vmas has version 2, this reader knows up to 1")

    def test_a_newer_minor_with_only_ancillary_unknowns_is_accepted(self):
        data = bytearray(load("example-64.psnc"))
        data[10:12] = struct.pack("<H", 7)
        at = table_entry_offset(data, 12)  # the first chunk-digests section
        data[at : at + 8] = struct.pack("<IHH", 0x7778, 3, r.SECTION_SAFE_TO_COPY)
        img = r.read_image(reseal(data))
        self.assertEqual(img["header"]["minor"], 7)
        self.assertEqual(img["decoded"]["processes"][0]["pid"], 42)

    def test_a_reader_without_section_12_refuses_an_image_with_epoll_fds(self):
        # What a 1.0 reader does with a 1.1 image that has epoll fds (§12): the epoll section is
        # critical and unknown to it.
        data = load("example-64.psnc")
        saved = r.KINDS.pop(12)
        try:
            self.assertRefused(data, "section 10 has unknown critical kind 0xc")
        finally:
            r.KINDS[12] = saved

    def test_a_reader_without_section_13_refuses_an_image_with_event_fds(self):
        # What a 1.1 reader does with a 1.2 image that has event fds (§12): the event-fds
        # section is critical and unknown to it.
        data = load("example-64.psnc")
        saved = r.KINDS.pop(13)
        try:
            self.assertRefused(data, "section 11 has unknown critical kind 0xd")
        finally:
            r.KINDS[13] = saved

    def test_a_reader_without_section_14_refuses_an_image_with_shared_descriptions(self):
        # What a 1.2 reader does with a 1.3 image where fds share a description (§12): the
        # fd-shares section is critical and unknown to it.
        data = load("example-64.psnc")
        saved = r.KINDS.pop(14)
        try:
            self.assertRefused(data, "section 12 has unknown critical kind 0xe")
        finally:
            r.KINDS[14] = saved

    def test_fd_share_groups_must_be_one_description(self):
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        self.assertEqual(d["fd-shares"], [{"fds": [{"pid": 42, "fd": 3}, {"pid": 42, "fd": 12}]}])
        for groups, msg in [
            ([[(42, 3)]], "fd-shares group 0 has 1 fd"),
            ([[(42, 3), (42, 30)]], "fd-shares group 0 names fd 30 of pid 42, which is not in the image"),
            ([[(42, 3), (42, 12)], [(42, 12), (42, 4)]], "fd 12 of pid 42 is in the fd-shares section twice"),
            ([[(42, 4), (42, 5)]], "fd-shares group 0: fd 4 of pid 42 and fd 5 of pid 42 differ"),
        ]:
            with self.subTest(groups=groups):
                d["fd-shares"] = [{"fds": [{"pid": p, "fd": f} for p, f in g]} for g in groups]
                with self.assertRaisesRegex(r.ImageError, msg):
                    r.check_model(d, img["bodies"])

    def test_event_fd_records_must_match_their_fds(self):
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        states = [(x["fd"], x["state"]) for x in d["event-fds"]]
        self.assertEqual(
            states,
            [
                (8, {"variant": "EventFd", "count": 5, "semaphore": True}),
                (
                    9,
                    {
                        "variant": "TimerFd",
                        "clockid": 0,
                        "settime_flags": 3,
                        "ticks": 1,
                        "value_ns": 1767225700000000000,
                        "interval_ns": 0,
                    },
                ),
                (10, {"variant": "SignalFd", "mask": 0x800000200}),
                (
                    11,
                    {
                        "variant": "Inotify",
                        "watches": [
                            {"wd": 1, "mask": 0x100, "path": "/home/example", "ino": 0x2A3, "dev": 0xFE00},
                            {"wd": 3, "mask": 0x2, "path": "/tmp/example.log", "ino": 0x2A4, "dev": 0xFE00},
                        ],
                    },
                ),
            ],
        )
        d["event-fds"][2]["fd"] = 4
        with self.assertRaisesRegex(r.ImageError, "a SignalFd record for pid 42 fd 4, which is not one"):
            r.check_model(d, img["bodies"])
        del d["event-fds"][2]
        with self.assertRaisesRegex(r.ImageError, "fd 10 of pid 42 is an eventfd, timerfd, signalfd or inotify fd without"):
            r.check_model(d, img["bodies"])

    # Two zombies of pid 42 (§8.17): 43 exited with 7, 44 killed by SIGTERM with a core. The
    # format crate's tests/zombies.rs checks that the Rust writer encodes them to these bytes.
    ZOMBIES_BODY = bytes([2, 43, 42, 43, 42, 0, 7, 44, 42, 42, 42, 1, 15, 1])

    def test_zombies_decode_and_must_fit_the_tree(self):
        img = r.read_image(load("example-64.psnc"))
        d = img["decoded"]
        d["zombies"] = r.decode_postcard(self.ZOMBIES_BODY, "zombies", 0, 8)
        self.assertEqual(
            d["zombies"],
            [
                {"pid": 43, "ppid": 42, "pgid": 43, "sid": 42, "status": {"variant": "Exited", "code": 7}},
                {"pid": 44, "ppid": 42, "pgid": 42, "sid": 42, "status": {"variant": "Killed", "signal": 15, "core": True}},
            ],
        )
        r.check_model(d, img["bodies"])
        s = r.summary(img)
        self.assertEqual([z["status"] for z in s["zombies"]], ["exit 7", "killed by signal 15 (core dumped)"])
        out = io.StringIO()
        r.print_summary(s, out)
        self.assertIn("zombie 44 <defunct> ppid 42 pgid 42 sid 42, killed by signal 15 (core dumped)\n", out.getvalue())
        d["zombies"][0]["ppid"] = 7
        with self.assertRaisesRegex(r.ImageError, "zombie 43 has parent 7, which is not a process of the image"):
            r.check_model(d, img["bodies"])
        d["zombies"][0].update(ppid=42, pid=42)
        with self.assertRaisesRegex(r.ImageError, "lists pid 42 twice"):
            r.check_model(d, img["bodies"])
        d["zombies"][0].update(pid=43, status={"variant": "Killed", "signal": 65, "core": False})
        with self.assertRaisesRegex(r.ImageError, "zombie 43 has signal 65, which no process can end with"):
            r.check_model(d, img["bodies"])
        # An unknown variant index is refused, not guessed.
        with self.assertRaisesRegex(r.ImageError, "zombies"):
            r.decode_postcard(bytes([1, 43, 42, 43, 42, 2, 7]), "zombies", 0, 8)

    def test_sysv_shm_records_decode(self):
        # No example image has a System V segment (§14): the body is written by hand from §8.22.
        def varint(n):
            out = b""
            while True:
                out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
                n >>= 7
                if not n:
                    return out

        def zigzag(n):
            return varint((n << 1) ^ (n >> 31))

        for word, fmt in ((4, "<I"), (8, "<Q")):
            body = varint(1) + zigzag(0x1234) + zigzag(65537) + varint(0o600)
            body += varint(1000) + varint(1000) + varint(0) + varint(0) + varint(10000)
            body += b"\x01\x00"
            body += varint(1) + varint(0) + varint(2) + struct.pack(fmt, 8192)
            body += varint(1) + varint(42) + struct.pack(fmt, 0x70000000) + b"\x01"
            got = r.decode_postcard(body, "sysv-shm", 0, word)
            self.assertEqual(
                got,
                [
                    {
                        "key": 0x1234, "shmid": 65537, "mode": 0o600, "uid": 1000, "gid": 1000,
                        "cuid": 0, "cgid": 0, "size": 10000, "removed": True, "locked": False,
                        "pages": [{"offset": 0, "pages": 2, "data_offset": 8192}],
                        "attachments": [{"pid": 42, "start": 0x70000000, "read_only": True}],
                    }
                ],
            )
            self.assertEqual(r.KIND_NUMBER["sysv-shm"], 22)

    def test_aio_records_decode_and_must_be_consistent(self):
        # No example image has an AIO context (§14), so the body is written here by hand from
        # §8.18: pid, ring and ring_len (class width), nr_events, head, tail (varints), events.
        def varint(n):
            out = b""
            while True:
                out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
                n >>= 7
                if not n:
                    return out

        events = bytes(range(64))
        for word, fmt in ((4, "<I"), (8, "<Q")):
            body = varint(1) + varint(42) + struct.pack(fmt, 0x60000000) + struct.pack(fmt, 4096)
            body += varint(127) + varint(126) + varint(1) + varint(len(events)) + events
            got = r.decode_postcard(body, "aio", 0, word)
            self.assertEqual(
                got,
                [{"pid": 42, "ring": 0x60000000, "ring_len": 4096, "nr_events": 127, "head": 126, "tail": 1, "events": events}],
            )
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        d["aio"] = got
        r.check_model(d, img["bodies"])
        vma = d["vmas"][0]["start"]
        for change, message in (
            ({"ring_len": 4000}, "the ring 0x60000000\\+0xfa0 is not whole pages"),
            ({"nr_events": 128}, "128 event slots do not fill a 4096-byte ring"),
            ({"tail": 127}, "head 126 or tail 127 is not below nr_events 127"),
            ({"head": 0}, "64 bytes of events for the slots from head 0 to tail 1"),
            ({"ring": vma}, "AIO context %#x of pid 42 overlaps another mapping" % vma),
        ):
            d["aio"] = [dict(got[0], **change)]
            with self.assertRaisesRegex(r.ImageError, message):
                r.check_model(d, img["bodies"])

    def test_inet_socket_records_decode_and_must_match_their_fds(self):
        # No example image has a socket (§14), so the body is written here by hand from §8.19:
        # pid, fd (zigzag), family, sock_type, protocol, state, local addr and port, peer addr
        # and port, backlog, options (level, name, value: zigzag).
        def varint(n):
            out = b""
            while True:
                out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
                n >>= 7
                if not n:
                    return out

        body = varint(1) + varint(42) + varint(20 * 2) + varint(2) + varint(1) + varint(6) + varint(2)
        body += varint(4) + bytes([127, 0, 0, 1]) + varint(8080) + varint(0) + varint(0) + varint(13)
        body += varint(1) + varint(1 * 2) + varint(2 * 2) + varint(1 * 2) + varint(0)
        got = r.decode_postcard(body, "inet-sockets", 0, 4)
        self.assertEqual(
            got,
            [
                {
                    "pid": 42, "fd": 20, "family": 2, "sock_type": 1, "protocol": 6,
                    "state": {"variant": "Listening"}, "local_addr": bytes([127, 0, 0, 1]),
                    "local_port": 8080, "peer_addr": b"", "peer_port": 0, "backlog": 13,
                    "options": [{"level": 1, "name": 2, "value": 1}], "tcp": None,
                }
            ],
        )
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        sock = {"pid": 42, "fd": 20, "flags": 2, "cloexec": False, "pos": 0,
                "kind": {"variant": "Socket", "family": 2, "sock_type": 1, "ino": 5}}
        d["fds"].append(sock)
        with self.assertRaisesRegex(r.ImageError, "fd 20 of pid 42 is an IPv4/IPv6 socket without its inet-sockets record"):
            r.check_model(d, img["bodies"])
        d["inet-sockets"] = got
        r.check_model(d, img["bodies"])
        for change, message in (
            ({"local_addr": bytes(16)}, "has an address of the wrong length for its family"),
            ({"sock_type": 2}, "has another family or type than its fd"),
            ({"fd": 3}, "pid 42 fd 3 names an fd that is not a socket"),
        ):
            d["inet-sockets"] = [dict(got[0], **change)]
            with self.assertRaisesRegex(r.ImageError, message):
                r.check_model(d, img["bodies"])
        d["inet-sockets"] = got * 2
        with self.assertRaisesRegex(r.ImageError, "appears twice"):
            r.check_model(d, img["bodies"])

    # One pty pair (§8.21): index 3, unlocked, not in packet mode, termios bytes 0..35, a 37x101
    # window, master pid 42 fd 5, slave pid 42 fd 0, session 42 with foreground group 42. The
    # format crate's sections/ttys.rs checks that the Rust writer encodes it to these bytes.
    TTYS_BODY = bytes([1, 3, 0, 0, 36] + list(range(36)) + [8, 37, 0, 101, 0, 0, 0, 0, 0, 1, 42, 10, 1, 42, 0, 42, 42])

    def test_ttys_decode_and_must_name_their_fds(self):
        img = r.read_image(load("example-64.psnc"))
        d = img["decoded"]
        d["ttys"] = r.decode_postcard(self.TTYS_BODY, "ttys", 0, 8)
        self.assertEqual(
            d["ttys"],
            [
                {
                    "index": 3,
                    "locked": False,
                    "packet": False,
                    "termios": bytes(range(36)),
                    "winsize": bytes([37, 0, 101, 0, 0, 0, 0, 0]),
                    "masters": [{"pid": 42, "fd": 5}],
                    "slaves": [{"pid": 42, "fd": 0}],
                    "session": 42,
                    "foreground": 42,
                }
            ],
        )
        d["processes"][0]["sid"] = 42
        d["fds"] = [f for f in d["fds"] if (f["pid"], f["fd"]) not in ((42, 0), (42, 5))]
        slave = {"pid": 42, "fd": 0, "flags": 2, "cloexec": False, "pos": 0}
        d["fds"].append(dict(slave, kind={"variant": "Tty", "path": "/dev/pts/3", "rdev": os.makedev(136, 3)}))
        d["fds"].append(dict(slave, fd=5, kind={"variant": "PtyMaster", "index": 3}))
        r.check_model(d, img["bodies"])
        out = io.StringIO()
        r.print_summary(r.summary(img), out)
        self.assertIn("pty 3 37x101 masters pid 42 fd 5 slaves pid 42 fd 0 session 42 foreground 42\n", out.getvalue())
        t = d["ttys"][0]
        for change, message in (
            ({"winsize": b"\0"}, "pty 3: 36 termios bytes and 1 winsize bytes"),
            ({"masters": []}, "pty 3: no master fd"),
            ({"masters": [{"pid": 42, "fd": 0}]}, "pty 3: fd 0 of pid 42 is not its master"),
            ({"slaves": [{"pid": 42, "fd": 5}]}, "pty 3: fd 5 of pid 42 is not its slave"),
            ({"session": 7}, "pty 3: session 7 is not a session leader of the image"),
        ):
            d["ttys"] = [dict(t, **change)]
            with self.assertRaisesRegex(r.ImageError, message):
                r.check_model(d, img["bodies"])
        d["ttys"] = []
        with self.assertRaisesRegex(r.ImageError, "fd 5 of pid 42 is the master of pty 3, which has no record"):
            r.check_model(d, img["bodies"])

    def test_unix_socket_records_decode_and_must_match_their_fds(self):
        # No example image has a socket (§14), so the body is written here by hand from §8.20:
        # pid, fd (zigzag), ino, sock_type, state, peer_ino, name, file (option), backlog,
        # shutdown, passcred, rcvbuf, sndbuf, queued (vec of bytes); every integer a varint.
        body = bytes([1, 42, 2 * 20, 100, 5, 1, 101, 0, 0, 0, 2, 0, 0, 0, 2, 3]) + b"one" + bytes([5]) + b"three"
        got = r.decode_postcard(body, "unix-sockets", 0, 4)
        self.assertEqual(got[0]["queued"], [b"one", b"three"])
        self.assertEqual((got[0]["fd"], got[0]["ino"], got[0]["peer_ino"], got[0]["shutdown"]), (20, 100, 101, 2))
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        sock = lambda fd, ino: {"pid": 42, "fd": fd, "flags": 2, "cloexec": False, "pos": 0, "kind": {"variant": "Socket", "family": 1, "sock_type": 5, "ino": ino}}  # noqa: E731
        d["fds"] += [sock(20, 100), sock(21, 101)]
        with self.assertRaisesRegex(r.ImageError, "fd 20 of pid 42 is a unix socket without its unix-sockets record"):
            r.check_model(d, img["bodies"])
        d["unix-sockets"] = got + [dict(got[0], fd=21, ino=101, peer_ino=100)]
        r.check_model(d, img["bodies"])
        d["unix-sockets"][1]["peer_ino"] = 0
        with self.assertRaisesRegex(r.ImageError, "socket:\\[100\\] is connected to socket:\\[101\\], which is not"):
            r.check_model(d, img["bodies"])
        d["unix-sockets"][1].update(peer_ino=100, ino=7)
        with self.assertRaisesRegex(r.ImageError, "pid 42 fd 21 disagrees with its fd's inode or type"):
            r.check_model(d, img["bodies"])

    def test_an_epoll_record_for_a_fd_that_is_not_epoll_is_refused(self):
        img = r.read_image(load("example-32.psnc"))
        d = img["decoded"]
        d["epoll"][0]["fd"] = 4
        with self.assertRaisesRegex(r.ImageError, "pid 42 fd 4, which is not an epoll fd"):
            r.check_model(d, img["bodies"])

    def test_an_oversized_length_is_refused_without_allocating(self):
        cur = r.Cursor(b"\xff\xff\xff\xff\x0f", "vmas", 0, 8)
        with self.assertRaisesRegex(r.ImageError, "exceeds"):
            cur.value(("vec", "VmaV1"), "vmas")
        cur = r.Cursor(b"\xff\xff\xff\xff\x1f", "x", 0, 8)
        with self.assertRaisesRegex(r.ImageError, "does not fit 32 bits"):
            cur.value("u32", "x")


class IncrementalImages(unittest.TestCase):
    """Format 1.4: the parent section (§8.24) and reading an incremental image with its chain."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="psnc-reader-test-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def place(self, name, as_name=None, data=None):
        """Puts an example (or `data`) into the temporary directory; returns its path."""
        path = os.path.join(self.tmp, as_name or name)
        with open(path, "wb") as f:
            f.write(load(name) if data is None else data)
        return path

    def test_the_incremental_examples_decode(self):
        for name, parent in INCREMENTAL.items():
            with self.subTest(image=name):
                img = r.read_image(load(name))
                d = img["decoded"]
                self.assertEqual((img["header"]["major"], img["header"]["minor"]), (1, 4))
                e = next(e for e in img["sections"] if e["kind"] == 24)
                self.assertEqual((e["name"], e["version"], e["flags"]), ("parent", 1, r.SECTION_CRITICAL))
                p = d["parent"]
                full = r.read_image(load(parent))
                self.assertEqual(p["digest"], full["trailer"]["image_sha256"])
                self.assertEqual(p["path"], parent)
                self.assertEqual(p["files"], [0])
                # The second run of the parent (in address order) is stored, the other four are
                # the parent's.
                runs = sorted(full["decoded"]["page-index"], key=lambda x: x["addr"])
                key = lambda x: (x["pid"], x["addr"], x["pages"])  # noqa: E731
                self.assertEqual([key(x) for x in d["page-index"]], [key(runs[1])])
                self.assertEqual([key(x) for x in p["pages"]], [key(x) for x in runs[:1] + runs[2:]])
                self.assertEqual(len(d["files"]), 1)
                self.assertEqual(img["bodies"]["file-data"].nbytes, 0)
                # Read alone, it is a valid image that says it needs its parent.
                out = run_cli(os.path.join(EXAMPLES, name), "--json", "--no-chain")
                self.assertEqual(out.returncode, 0, out.stderr)
                s = json.loads(out.stdout)
                self.assertEqual(s["format_version"], "1.4")
                self.assertEqual(
                    {k: v for k, v in s["parent"].items() if k != "digest"},
                    {"path": parent, "page_runs": 4, "pages": 5, "files": [0], "chain": None},
                )
                self.assertEqual(s["processes"][0]["parent_pages"], 5)
                self.assertTrue(s["files"][0]["in_parent"])

    def test_a_full_image_has_no_parent(self):
        img = r.read_chain(os.path.join(EXAMPLES, "example-32.psnc"))
        self.assertIsNone(img["chain"])
        self.assertIsNone(r.summary(img)["parent"])

    def test_with_its_parent_beside_it_the_chain_resolves_and_merges(self):
        for name, parent in INCREMENTAL.items():
            with self.subTest(image=name):
                img = r.read_chain(os.path.join(EXAMPLES, name))
                full = r.read_chain(os.path.join(EXAMPLES, parent))
                self.assertEqual(
                    img["chain"],
                    {"parent": os.path.join(EXAMPLES, parent), "images": [os.path.join(EXAMPLES, parent)], "pages_from_chain": 5, "files_from_chain": 1},
                )
                merged, want = r.pages_of(img["memory"], 42), r.pages_of(full["memory"], 42)
                self.assertEqual(sorted(merged), sorted(want))
                second = sorted(full["decoded"]["page-index"], key=lambda x: x["addr"])[1]
                changed = {second["addr"] + i * r.PAGE_SIZE for i in range(second["pages"])}
                self.assertTrue(changed)
                for addr, page in want.items():
                    if addr in changed:
                        self.assertEqual(merged[addr], bytes(b ^ 0xFF for b in page), hex(addr))
                    else:
                        self.assertEqual(merged[addr], page, hex(addr))
                # The executable's contents are the parent's.
                self.assertEqual(bytes(img["file_contents"][0]), bytes(full["file_contents"][0]))
                self.assertEqual(hashlib.sha256(img["file_contents"][0]).digest(), img["decoded"]["files"][0]["sha256"])
                out = run_cli(os.path.join(EXAMPLES, name), "--json")
                self.assertEqual(out.returncode, 0, out.stderr)
                chain = json.loads(out.stdout)["parent"]["chain"]
                self.assertEqual((chain["pages_from_chain"], chain["files_from_chain"]), (5, 1))
        out = run_cli(os.path.join(EXAMPLES, "example-incremental-32.psnc"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("parent chain ok: %s; 5 pages and 1 stored files taken from it\n" % os.path.join(EXAMPLES, "example-32.psnc"), out.stdout)
        self.assertIn("  4 parent runs, 5 pages from the parent:\n", out.stdout)
        self.assertIn("  0 /usr/bin/example 8192 bytes in the parent chain", out.stdout)

    def test_without_its_parent_the_chain_is_refused(self):
        path = self.place("example-incremental-32.psnc")
        with self.assertRaisesRegex(r.ImageError, "the parent image .* is not found: tried %s" % re.escape(os.path.join(self.tmp, "example-32.psnc"))):
            r.read_chain(path)
        out = run_cli(path)
        self.assertEqual(out.returncode, 1)
        self.assertIn("is not found", out.stderr)
        self.assertEqual(run_cli(path, "--no-chain").returncode, 0)

    def test_the_parent_where_the_user_says(self):
        path = self.place("example-incremental-64.psnc")
        os.mkdir(os.path.join(self.tmp, "elsewhere"))
        given = self.place("example-64.psnc", os.path.join("elsewhere", "renamed.psnc"))
        img = r.read_chain(path, parent=given)
        self.assertEqual(img["chain"]["parent"], given)
        out = run_cli(path, "--parent", given, "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["parent"]["chain"]["found_at"], given)

    def test_the_parent_is_looked_for_by_path_then_by_its_last_component(self):
        here = os.path.join(self.tmp, "d")
        os.mkdir(here)
        absolute = self.place("example-32.psnc", "abs.psnc")
        self.assertEqual(r.locate_parent(absolute, here), absolute)
        self.assertEqual(r.locate_parent("abs.psnc", self.tmp), absolute)
        # The recorded place is gone: the same name in the image's directory.
        moved = self.place("example-32.psnc", os.path.join("d", "p.psnc"))
        self.assertEqual(r.locate_parent("/gone/away/p.psnc", here), moved)
        self.assertEqual(r.locate_parent("gone/p.psnc", here), moved)
        self.assertEqual(r.locate_parent("gone/p.psnc", here, given=absolute), absolute)
        with self.assertRaisesRegex(r.ImageError, "tried %s, %s$" % (re.escape(os.path.join(here, "gone", "x.psnc")), re.escape(os.path.join(here, "x.psnc")))):
            r.locate_parent("gone/x.psnc", here)
        # Where the user says is the only place looked at, even when the recorded one exists.
        with self.assertRaisesRegex(r.ImageError, "tried /nowhere/p.psnc$"):
            r.locate_parent("p.psnc", here, given="/nowhere/p.psnc")

    def test_another_image_in_the_parents_place_is_refused_by_digest(self):
        for name, parent, other in (
            ("example-incremental-32.psnc", "example-32.psnc", "example-64.psnc"),
            ("example-incremental-64.psnc", "example-64.psnc", "example-32.psnc"),
        ):
            with self.subTest(image=name):
                path = self.place(name)
                self.place(other, parent)
                want = r.read_image(load(name))["decoded"]["parent"]["digest"].hex()
                found = r.read_image(load(other))["trailer"]["image_sha256"].hex()
                with self.assertRaisesRegex(r.ImageError, "has image digest %s, but this image completes the image with digest %s" % (found, want)):
                    r.read_chain(path)
                self.assertEqual(run_cli(path).returncode, 1)
                # An older release of the same example (another header, so another digest).
                self.place(parent, data=load(parent, os.path.join(GOLDEN, "v1.3")))
                with self.assertRaisesRegex(r.ImageError, "has image digest"):
                    r.read_chain(path)

    def test_a_corrupt_parent_is_refused(self):
        path = self.place("example-incremental-32.psnc")
        data = bytearray(load("example-32.psnc"))
        page_data = next(e for e in r.read_image(bytes(data))["sections"] if e["name"] == "page-data")
        data[page_data["offset"] + 100] ^= 0x01
        parent = self.place("example-32.psnc", data=bytes(data))
        with self.assertRaisesRegex(r.ImageError, "parent image %s: digest mismatch in section 0 \\(page-data\\)" % re.escape(parent)):
            r.read_chain(path)
        out = run_cli(path)
        self.assertEqual(out.returncode, 1)
        self.assertIn("digest mismatch in section 0 (page-data)", out.stderr)

    def test_a_page_or_file_the_chain_does_not_store_is_refused(self):
        parent = r.read_chain(os.path.join(EXAMPLES, "example-32.psnc"))
        img = r.read_image(load("example-incremental-32.psnc"))
        d = img["decoded"]
        # The text of the executable is a VMA, but no image of the chain stores its pages.
        d["parent"]["pages"].insert(0, {"pid": 42, "addr": 0x08048000, "pages": 1})
        r.check_model(d, img["bodies"])
        r.own_contents(img)
        with self.assertRaisesRegex(r.ImageError, "parent run 0x8048000\\+1 pages of pid 42: the page at 0x8048000 is stored nowhere in the parent chain"):
            r.merge_parent(img, parent, "p")
        img = r.read_image(load("example-incremental-32.psnc"))
        img["decoded"]["files"][0]["size"] = 4096
        r.own_contents(img)
        with self.assertRaisesRegex(r.ImageError, "stored file 0 \\(/usr/bin/example, 4096 bytes, sha256 40c34c07.*\\) is stored nowhere in the parent chain"):
            r.merge_parent(img, parent, "p")

    def test_the_parent_section_rules_are_checked(self):
        img = r.read_image(load("example-incremental-64.psnc"))
        d = img["decoded"]
        runs = d["parent"]["pages"]
        run = lambda addr, pages=1, pid=42: {"pid": pid, "addr": addr, "pages": pages}  # noqa: E731
        own = d["page-index"][0]["addr"]
        for pages, message in (
            (runs[1:2] + runs[0:1] + runs[2:], "is out of order: parent runs are sorted by \\(pid, addr\\)"),
            (runs[:1] + [run(runs[0]["addr"])] + runs[1:], "overlaps the previous parent run"),
            (runs[:1] + [run(own)] + runs[1:], "parent run %#x\\+1 pages of pid 42 overlaps the page-index run %#x\\+1 pages" % (own, own)),
            ([run(runs[0]["addr"], 2)] + runs[1:], "the page at 0x404000 lies in no VMA of the process"),
            (runs + [run(0x10000000, pid=43)], "pid 43 is not in the image"),
            (runs + [run(0x7FFC10000000 + 0x800)], "is unaligned or empty"),
            (runs + [run(0x7FFC10000000, 0)], "is unaligned or empty"),
        ):
            with self.subTest(message=message):
                d["parent"]["pages"] = pages
                with self.assertRaisesRegex(r.ImageError, message):
                    r.check_model(d, img["bodies"])
        d["parent"]["pages"] = runs
        r.check_model(d, img["bodies"])
        # A run may span adjacent VMAs: the text (0x400000..0x403000) and the data
        # (0x403000..0x404000) of the executable.
        self.assertEqual(runs[0]["addr"], 0x403000)
        d["parent"]["pages"] = [run(0x402000, 2)] + runs[1:]
        r.check_model(d, img["bodies"])
        d["parent"]["pages"] = runs
        for files, message in (([1], "lists stored file 1, the image stores 1"), ([0, 0], "lists stored file 0 twice")):
            with self.subTest(files=files):
                d["parent"]["files"] = files
                with self.assertRaisesRegex(r.ImageError, message):
                    r.check_model(d, img["bodies"])
        # Without the parent section, the executable would have to be in this image's file-data.
        del d["parent"]
        with self.assertRaisesRegex(r.ImageError, "stored file 0 \\(/usr/bin/example\\): bytes 0x0..0x2000 outside the file data"):
            r.check_model(d, img["bodies"])

    def test_a_second_parent_section_is_refused(self):
        data = load("example-incremental-32.psnc")
        at = table_entry_offset(data, 15)  # the chunk-digests of file-data, now a second parent
        bad = bytearray(data)
        bad[at : at + 8] = struct.pack("<IHH", 24, 1, r.SECTION_CRITICAL)
        with self.assertRaisesRegex(r.ImageError, "section parent appears more than once"):
            r.read_image(reseal(bad))

    def test_a_reader_without_section_24_refuses_an_incremental_image(self):
        # What a 1.3 reader does with an incremental image (§12).
        data = load("example-incremental-64.psnc")
        saved = r.KINDS.pop(24)
        try:
            with self.assertRaisesRegex(r.ImageError, "section 13 has unknown critical kind 0x18"):
                r.read_image(data)
        finally:
            r.KINDS[24] = saved


class SpecWalkthrough(unittest.TestCase):
    """Every hex dump and byte table of FORMAT.md §13 shows the bytes of the example files."""

    ROW = re.compile(r"^\| (0x[0-9a-f]+) \| ([0-9a-f]{2}(?: [0-9a-f]{2})*)(?: … ([0-9a-f]{2}(?: [0-9a-f]{2})*) \((\d+) bytes\))? \|")
    DUMP = re.compile(r"^([0-9a-f]{8})((?:  ?[0-9a-f]{2})+) +\|.*\|$")
    SWITCH = re.compile(r"<!-- checked against (example-\d+\.psnc) -->")

    def test_walkthrough_bytes_match_the_examples(self):
        with open(SPEC, encoding="utf-8") as f:
            lines = f.read().split("\n")
        start = next(i for i, line in enumerate(lines) if line.startswith("## 13."))
        end = next(i for i, line in enumerate(lines) if line.startswith("## 14."))
        files = {name: load(name) for name in EXPECTED}
        current, in_dump, checked = None, False, 0
        for n, line in enumerate(lines[start:end], start + 1):
            m = self.SWITCH.search(line)
            if m:
                current = files[m.group(1)]
                continue
            if line.startswith("```"):
                in_dump = line.strip() == "```hexdump"
                continue
            where = "FORMAT.md line %d" % n
            if in_dump:
                m = self.DUMP.match(line)
                self.assertIsNotNone(m, "%s: not a hex dump line: %r" % (where, line))
                off = int(m.group(1), 16)
                want = bytes.fromhex(m.group(2).replace(" ", ""))
                self.assertIsNotNone(current, where)
                self.assertEqual(current[off : off + len(want)].hex(" "), want.hex(" "), where)
                checked += 1
                continue
            m = self.ROW.match(line)
            if m:
                self.assertIsNotNone(current, where)
                off = int(m.group(1), 16)
                head = bytes.fromhex(m.group(2).replace(" ", ""))
                self.assertEqual(current[off : off + len(head)].hex(" "), head.hex(" "), where)
                if m.group(3):
                    tail = bytes.fromhex(m.group(3).replace(" ", ""))
                    size = int(m.group(4))
                    self.assertEqual(current[off + size - len(tail) : off + size].hex(" "), tail.hex(" "), where)
                checked += 1
        self.assertGreater(checked, 80, "the walkthrough lost its byte tables")

    def test_walkthrough_layout_table_matches_the_section_table(self):
        with open(SPEC, encoding="utf-8") as f:
            text = f.read()
        layout = text[text.index("### 13.1") : text.index("### 13.2")]
        rows = re.findall(r"^\| (\d+) \| (\d+) \| [^|]+\| [^|]+\| (0x[0-9a-f]+) \| (\d+) \| (0x[0-9a-f]+) \|$", layout, re.M)
        img = r.read_image(load("example-32.psnc"))
        got = [(e["index"], e["kind"], e["offset"], e["length"]) for e in img["sections"]]
        want = [(int(i), int(k), int(o, 16), int(l)) for i, k, o, l, _ in rows]
        self.assertEqual(want, got)
        for i, k, o, l, e in rows:
            self.assertEqual(int(o, 16) + int(l), int(e, 16), "end of section %s" % i)


if __name__ == "__main__":
    unittest.main()
