"""Checks spec/FORMAT.md against the code: the independent reader on the example images.

Run from the repository root: python3 -m unittest discover -s spec/reader -v
"""

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
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
                self.assertEqual(s["format_version"], "1.2")
                self.assertEqual(s["layout_class"], bits)
                self.assertTrue(s["streamed"])
                self.assertEqual(len(s["sections"]), 14)
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
                self.assertEqual([f["fd"] for f in p["fds"]], [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11])
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
        for v in versions:
            for name, (bits, _, vma0, _, _) in EXPECTED.items():
                with self.subTest(version=v, image=name):
                    img = r.read_image(load(name, os.path.join(GOLDEN, v)))
                    self.assertEqual(img["header"]["class_bits"], bits)
                    self.assertEqual(img["decoded"]["processes"][0]["pid"], 42)
                    self.assertEqual(img["decoded"]["vmas"][0]["start"], vma0)


class Corruption(unittest.TestCase):
    def assertRefused(self, data, pattern):
        with self.assertRaisesRegex(r.ImageError, pattern):
            r.read_image(data)

    def test_a_flipped_byte_anywhere_is_detected(self):
        data = load("example-32.psnc")
        img = r.read_image(data)
        spots = [("header", 0x10), ("padding", 0x20), ("table", img["trailer"]["table_offset"] + 20)]
        spots += [("image digest", img["trailer"]["offset"] + 8)]
        spots += [(e["name"], e["offset"] + e["length"] // 2) for e in img["sections"]]
        for what, at in spots:
            with self.subTest(what=what, offset=hex(at)):
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
        self.assertRefused(bytes(newer), r"version 2\.2 is not supported: this reader supports major version 1")

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
