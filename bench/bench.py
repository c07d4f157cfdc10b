#!/usr/bin/env python3
"""Capture and restore benchmark of psnc-cr (issues 3, 4), compared with the physical limit and CRIU.

For each memory size (default 64 MiB, 1 GiB, 4 GiB of non-zero anonymous memory) and each
destination (a tmpfs and a disk directory) it measures, in the same run:

  capture   psnc-capture PID -o IMAGE --json --kill: wall time, the time the target was stopped
            (stopped_ms from --json), image size
  limit     process_vm_readv of the same memory + write of the same bytes (+ fsync): bench/limit.c
  restore   psnc-restore IMAGE until it printed the PID (the process runs on its own)
  fill      filling the same amount of fresh memory from the limit file: bench/limit.c
  criu      CRIU 4.1 dump and restore of the same target, when available

and prints ratios: capture speed / limit speed (the goal is >= 0.8), restore likewise, and our
time / CRIU's. Writing into fresh memory is slow and noisy on VMs: compare only within one run.
The restored target checks its memory afterwards; a wrong restore is reported, not timed as fine.

With --tree 1,10,100 the target is bench/tree.c: a root and that many processes minus one children,
each with the given memory of its own (rows per process count and size; psnc and CRIU capture
the whole tree; the column "stop ms/proc" is the stop time per process). With --shared-mib S
the tree also shares one S MiB region of MAP_SHARED|MAP_ANONYMOUS memory that the root fills
before it forks; every restored process checks it and the children check that they still share
it with the root (a restore that copies it per process fails). Shared memory is stored once:
compare the image sizes of 1, 10 and 100 processes.

With --threads 1,16,256 the target is bench/threads.c instead: that many threads (main included),
each waking every 10 ms, and the same memory; rows per thread count and size, and two more
columns: the spread of the moments the restored threads resumed (ours and CRIU's), and the stop
time per thread.

With --sockets unix:10000,tcp:1000 the target is bench/sockets.c: one process holding that many
idle AF_UNIX socketpairs, or established TCP connections over 127.0.0.1 (both ends in the
process; psnc and CRIU get --tcp-established), each with bytes queued both ways; rows per
kind and count (--sizes is ignored). The restored target reads every queue back and exchanges
one more message on every connection.

With --vmas 10000,60000 the target is tests/targets/vmas.c: one process with that many one-page
VMAs of alternating protection, each page with its own pattern (the cost per VMA; --sizes is
ignored). The restored target checks its pages, its VMA count and their protections.

With --fds 1000,19000 the target is tests/targets/fds.c: that many fds on one file, each at its
own offset, every third close-on-exec, every seventh closed again (the cost per fd; keep N below
the hard RLIMIT_NOFILE). The restored target checks offsets, flags and gaps.

With --freeze the target is bench/freeze.c: the given memory, about --rate random pages written
per second, and a thread that measures the longest gap between its wake-ups (every 200 us). Each
tool captures it and leaves it running (psnc-capture without --kill, criu dump --leave-running);
the row shows the longest freeze the target saw, against fork() of the same process (the time
to copy its page tables: the least a stop that snapshots the memory costs) and against CRIU's in
the same run, with the capture's wall time, image size and how psnc copied the memory
(pre-copy rounds, pages read while stopped). Runs --runs times; min / median.

With --incremental the target is bench/freeze.c too: a full capture that leaves it running, then
--touch (default 1%) of its pages written, then an incremental capture against the first
(psnc-capture --parent, with --kill); the row shows both images' sizes and their ratio (the
issue's goal: at most 3% at 1% touched), both capture times, the restore of the chain against
that of the full image, and a merge of the chain.

Run as root:  bench/bench.py [--sizes 64,1024,4096] [--dests tmpfs,disk] [--criu PATH|none]
              bench/bench.py --incremental --sizes 1024,4096 --dests tmpfs [--touch 0.01]
              bench/bench.py --freeze --sizes 64,1024,4096 --dests tmpfs [--rate 1000] [--runs 2]
              bench/bench.py --threads 1,16,256 --sizes 16,1024 --dests tmpfs
              bench/bench.py --tree 1,10,100 --sizes 16 --dests tmpfs [--shared-mib 256]
              bench/bench.py --sockets unix:1000,unix:10000,tcp:1000 --dests tmpfs
              bench/bench.py --vmas 10000,60000 --dests tmpfs
              bench/bench.py --fds 1000,19000 --dests tmpfs
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
LAZY = False


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build(args):
    """Builds the tools (release) and the two C helpers; returns (tools dir, helper dir)."""
    if not args.no_build:
        sh(["cargo", "build", "--release", "-q", "-p", "psnc-capture", "-p", "psnc-restore",
            "-p", "psnc-imgtool"], cwd=ROOT)
    tools = Path(args.tools_dir) if args.tools_dir else target_dir() / "release"
    helpers = target_dir() / "psnc-bench"
    helpers.mkdir(parents=True, exist_ok=True)
    sh(["cc", "-O2", "-o", helpers / "memory", ROOT / "tests/targets/memory.c"])
    sh(["cc", "-O2", "-pthread", "-I", ROOT / "tests/targets", "-o", helpers / "threads",
        ROOT / "bench/threads.c"])
    sh(["cc", "-O2", "-o", helpers / "limit", ROOT / "bench/limit.c"])
    sh(["cc", "-O2", "-I", ROOT / "tests/targets", "-o", helpers / "tree",
        ROOT / "bench/tree.c"])
    sh(["cc", "-O2", "-I", ROOT / "tests/targets", "-o", helpers / "sockets",
        ROOT / "bench/sockets.c"])
    sh(["cc", "-O2", "-pthread", "-o", helpers / "freeze", ROOT / "bench/freeze.c"])
    sh(["cc", "-O2", "-I", ROOT / "tests/targets", "-o", helpers / "vmas",
        ROOT / "tests/targets/vmas.c"])
    sh(["cc", "-O2", "-I", ROOT / "tests/targets", "-o", helpers / "fds",
        ROOT / "tests/targets/fds.c"])
    return tools, helpers


def find_criu(arg):
    """CRIU 4.1: --criu PATH, $CRIU, /opt/criu4/criu4, or installed with shared/tools/setup-criu4."""
    if arg == "none":
        return None
    for c in [arg, os.environ.get("CRIU"), "/opt/criu4/criu4"]:
        if c and os.access(c, os.X_OK):
            return c
    for setup in [ROOT.parent / "shared/tools/setup-criu4", Path("/work/shared/tools/setup-criu4")]:
        if setup.exists():
            r = subprocess.run(["sh", str(setup), "/opt/criu4"], capture_output=True, text=True)
            if r.returncode == 0 and os.access("/opt/criu4/criu4", os.X_OK):
                return "/opt/criu4/criu4"
            print(f"note: setup-criu4 failed: {r.stderr.strip()[-300:]}", file=sys.stderr)
    return None


class Target:
    """The memory target holding SIZE MiB of non-zero memory (tests/targets/memory.c fill), or
    with THREADS threads the threads target (bench/threads.c) with the same memory, or with
    PROCS processes the tree target (bench/tree.c), each process with that memory."""

    def __init__(self, helpers, mib, workdir, threads=None, procs=None, sockets=None, vmas=None,
                 fds=None):
        self.dir = Path(tempfile.mkdtemp(prefix="target-", dir=workdir))
        self.report = self.dir / "report"
        self.procs = procs
        self.sockets = sockets
        self.vmas = vmas
        self.fds = fds
        if fds is not None:
            argv = [helpers / "fds", self.report, str(fds)]
        elif vmas is not None:
            argv = [helpers / "vmas", self.report, str(vmas)]
        elif sockets is not None:
            argv = [helpers / "sockets", self.report, sockets[0], str(sockets[1])]
        elif procs is not None:
            argv = [helpers / "tree", self.report, str(procs), str(mib), str(SHARED_MIB)]
        elif threads is None:
            argv = [helpers / "memory", self.report, "fill", str(mib)]
        else:
            argv = [helpers / "threads", self.report, str(threads), str(mib)]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.pid = self.proc.pid
        self.addr = self.len = None
        self.wait_line(f"READY {self.pid}", 600)
        self.tree_pids = [self.pid]
        if procs is not None:
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            self.tree_pids += [int(k) for k in kids]
        for line in self.lines():
            if line.startswith("INFO fill "):
                a, n = line.split()[2:4]
                self.addr, self.len = int(a, 16), int(n)

    def lines(self):
        try:
            return self.report.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_line(self, prefix, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(l.startswith(prefix) for l in self.lines()):
                return True
            time.sleep(0.02)
        raise RuntimeError(f"target {self.pid}: no '{prefix}' after {timeout} s: {self.lines()}")

    def verify(self, pid):
        """Lets the (restored) target check its memory (and its threads' TIDs); returns True when
        it passed. Keeps the threads target's resume spread in self.spread_s."""
        (self.dir / "report.go").touch()
        self.wait_line("DONE", 600)
        lines = self.lines()
        ok = "PASS fill" in lines and not any(l.startswith("FAIL") for l in lines)
        if self.sockets is not None:
            ok = "PASS sockets" in lines and not any(l.startswith("FAIL") for l in lines)
        if self.vmas is not None:
            ok = all(f"PASS {c}" in lines for c in ("vma_pages", "vma_count", "vma_prots"))
        if self.fds is not None:
            ok = all(f"PASS {c}" in lines for c in ("fd_offsets", "fd_cloexec", "fd_gaps"))
        if self.procs is not None:
            passed = sum(1 for l in lines if l.startswith("PASS fill "))
            ok = passed == self.procs and not any(l.startswith("FAIL") for l in lines)
        self.spread_s = None
        for line in lines:
            if line.startswith("INFO spread_us "):
                self.spread_s = float(line.split()[2]) / 1e6
        (self.dir / "report.go").unlink()
        self.kill_tree(pid)
        return ok

    def kill_tree(self, pid):
        """Kills the (restored) target; the tree target's whole process group (its root leads
        it, before and after a restore)."""
        if self.procs is not None:
            try:
                os.killpg(pid, 9)
            except ProcessLookupError:
                pass
        kill(pid)

    def wait_gone(self):
        """Waits until every process of the captured target is gone (a killed tree's children
        are reaped by init, not at once), so that a restore finds its PIDs free."""
        end = time.monotonic() + 30
        while time.monotonic() < end and any(Path(f"/proc/{p}").exists()
                                             for p in self.tree_pids):
            time.sleep(0.01)

    def reap(self):
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill_tree(self.pid)
        self.reap()
        shutil.rmtree(self.dir, ignore_errors=True)


def kill(pid):
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)


def timed(cmd, **kw):
    t0 = time.monotonic()
    if "stdout" not in kw:
        kw.update(capture_output=True, text=True)
    r = subprocess.run(cmd, **kw)
    return time.monotonic() - t0, r


def timed_rss(cmd):
    """Runs cmd; returns (seconds, CompletedProcess, its peak RSS in bytes from wait4)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The tools print little: read one pipe, then the other, then reap with wait4.
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.monotonic() - t0
    return secs, subprocess.CompletedProcess(cmd, p.returncode, out, err), ru.ru_maxrss * 1024


def drop_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def bench_one(args, tools, helpers, criu, mib, dest, dest_dir, threads=None, procs=None,
              sockets=None, vmas=None, fds=None):
    res = {"size_mib": mib, "dest": dest, "threads": threads, "procs": procs,
           "sockets": None if sockets is None else f"{sockets[1]} {sockets[0]}",
           "vmas": vmas, "fds": fds}
    bench_ours(res, tools, helpers, mib, dest_dir, threads, procs, sockets, vmas, fds)
    if criu:
        bench_criu(res, criu, helpers, mib, dest_dir, threads, procs, sockets, vmas, fds)
    return res


def tcp_flags(sockets):
    """The flags both tools need for the target's connections."""
    return ["--tcp-established"] if sockets and sockets[0] == "tcp" else []


def bench_ours(res, tools, helpers, mib, dest_dir, threads=None, procs=None, sockets=None,
               vmas=None, fds=None):
    t = Target(helpers, mib, dest_dir, threads, procs, sockets, vmas, fds)
    try:
        # The physical limits, with this very target's memory (none without memory).
        if t.len:
            limit_file = dest_dir / "limit.bin"
            r = subprocess.run([helpers / "limit", "read", str(t.pid), hex(t.addr), str(t.len),
                                limit_file], capture_output=True, text=True, check=True)
            res["limit_read_s"] = float(r.stdout)
            r = subprocess.run([helpers / "limit", "fill", limit_file, str(t.len)],
                               capture_output=True, text=True, check=True)
            res["limit_fill_s"] = float(r.stdout)
            drop_file(limit_file)

        image = dest_dir / "image"
        secs, r = timed([tools / "psnc-capture", str(t.pid), "-o", image, "--json", "--kill"]
                        + tcp_flags(sockets))
        if r.returncode != 0:
            res["error"] = f"capture: {r.stderr.strip()[-300:]}"
            return
        t.reap()
        t.wait_gone()
        res["capture_s"] = secs
        try:
            summary = json.loads(r.stdout.strip().splitlines()[-1])
            res["stopped_s"] = summary.get("stopped_ms", float("nan")) / 1e3
        except (ValueError, IndexError):
            res["stopped_s"] = float("nan")
        res["image_bytes"] = image.stat().st_size

        secs, r = timed([tools / "psnc-restore", image])
        if r.returncode != 0:
            res["error"] = f"restore: {r.stderr.strip()[-300:]}"
            drop_file(image)
            return
        res["restore_s"] = secs
        pid = int(r.stdout.split()[-1])
        res["restored_ok"] = t.verify(pid)
        res["spread_s"] = t.spread_s
        if LAZY and procs is None:
            # The same image again with --lazy: until the PID is printed (the process runs;
            # its memory comes on first touch and from the server in the background).
            t.wait_gone()
            t.report.write_text("")
            # stderr to a file: the server the tool leaves behind keeps it (for a late
            # corrupt chunk's report); stdout, where the PID comes, it closes.
            with open(dest_dir / "lazy.err", "w") as err:
                secs, r = timed([tools / "psnc-restore", "--lazy", image], stdout=subprocess.PIPE,
                                stderr=err, text=True)
            if r.returncode != 0:
                res["error"] = f"lazy restore: {(dest_dir / 'lazy.err').read_text()[-300:]}"
            else:
                res["lazy_restore_s"] = secs
                res["lazy_ok"] = t.verify(int(r.stdout.split()[-1]))
        drop_file(image)
    finally:
        drop_file(dest_dir / "image")
        t.close()


def bench_criu(res, criu, helpers, mib, dest_dir, threads=None, procs=None, sockets=None,
               vmas=None, fds=None):
    t = Target(helpers, mib, dest_dir, threads, procs, sockets, vmas, fds)
    cdir = dest_dir / "criu"
    shutil.rmtree(cdir, ignore_errors=True)
    cdir.mkdir()
    try:
        secs, r = timed([criu, "dump", "-t", str(t.pid), "-D", cdir, "-o", "dump.log"]
                        + tcp_flags(sockets))
        if r.returncode != 0:
            res["criu_error"] = "dump failed: " + tail_log(cdir / "dump.log")
            return
        t.reap()
        t.wait_gone()
        res["criu_dump_s"] = secs
        res["criu_image_bytes"] = sum(f.stat().st_size for f in cdir.iterdir())
        secs, r = timed([criu, "restore", "-d", "-D", cdir, "-o", "restore.log"]
                        + tcp_flags(sockets))
        if r.returncode != 0:
            res["criu_error"] = "restore failed: " + tail_log(cdir / "restore.log")
            return
        res["criu_restore_s"] = secs
        res["criu_restored_ok"] = t.verify(t.pid)
        res["criu_spread_s"] = t.spread_s
    finally:
        t.close()
        shutil.rmtree(cdir, ignore_errors=True)


def tail_log(path):
    try:
        return " | ".join(path.read_text().strip().splitlines()[-3:])
    except OSError:
        return f"(no {path})"


def fmt_row(r):
    def g(k, f="{:.3f}"):
        v = r.get(k)
        return "-" if v is None else f.format(v)

    def ratio(a, b):
        return "-" if r.get(a) is None or not r.get(b) else f"{r[a] / r[b]:.2f}"

    cells = [
        f"{r['size_mib']} MiB", r["dest"],
        g("capture_s"), g("stopped_s"), g("image_bytes", "{:,}"), g("limit_read_s"),
        ratio("limit_read_s", "capture_s"),
        g("restore_s"), g("limit_fill_s"), ratio("limit_fill_s", "restore_s"),
        g("criu_dump_s"), ratio("capture_s", "criu_dump_s"),
        g("criu_restore_s"), ratio("restore_s", "criu_restore_s"),
        {True: "ok", False: "WRONG", None: "-"}[r.get("restored_ok")],
        {True: "ok", False: "WRONG", None: "-"}[r.get("criu_restored_ok")],
    ]
    if r.get("fds") is not None:
        cells[0] = f"{r['fds']} fds"
    elif r.get("vmas") is not None:
        cells[0] = f"{r['vmas']} VMAs"
    elif r.get("sockets") is not None:
        cells[0] = r["sockets"]
    elif r.get("procs") is not None:
        per = None if r.get("stopped_s") is None else r["stopped_s"] * 1e3 / r["procs"]
        cells[1:1] = [str(r["procs"])]
        cells += ["-" if per is None else f"{per:.3f}"]
    elif r.get("threads") is not None:
        per = None if r.get("stopped_s") is None else r["stopped_s"] * 1e3 / r["threads"]
        cells[1:1] = [str(r["threads"])]
        cells += ["-" if per is None else f"{per:.3f}",
                  "-" if r.get("spread_s") is None else f"{r['spread_s'] * 1e3:.2f}",
                  "-" if r.get("criu_spread_s") is None else f"{r['criu_spread_s'] * 1e3:.2f}"]
    return cells


HEAD = ["memory", "to", "capture s", "stopped s", "image bytes", "limit s", "cap/limit",
        "restore s", "fill s", "rst/limit", "criu dump s", "ours/criu", "criu rst s",
        "ours/criu", "check", "criu check"]


# MiB of MAP_SHARED anonymous memory the tree target shares between all its processes.
SHARED_MIB = 0


def print_lazy(rows):
    """The --lazy rows: restore until running, full and lazy."""
    rows = [r for r in rows if "lazy_restore_s" in r]
    if not rows:
        return
    head = ["memory", "to", "restore s", "lazy restore s", "lazy/full", "criu rst s",
            "lazy/criu", "lazy check"]
    cells = [head]
    for r in rows:
        criu = r.get("criu_restore_s")
        cells.append([f"{r['size_mib']} MiB", r.get("dest", "-"), f"{r['restore_s']:.3f}",
                      f"{r['lazy_restore_s']:.3f}",
                      f"{r['lazy_restore_s'] / r['restore_s']:.2f}",
                      f"{criu:.3f}" if criu else "-",
                      f"{r['lazy_restore_s'] / criu:.2f}" if criu else "-",
                      "ok" if r.get("lazy_ok") else "WRONG"])
    print()
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    for c in cells:
        print("  ".join(str(v).rjust(w) for v, w in zip(c, widths)))
    print("lazy restore s: psnc-restore --lazy until the PID is printed (the process runs; its "
          "memory comes on first touch and in the background). The issue's goal: within "
          "100 ms at 4 GiB. lazy check: the target checked all its memory afterwards.")


def print_table(rows):
    head = HEAD
    if rows and rows[0].get("fds") is not None:
        head = ["fds"] + HEAD[1:]
    elif rows and rows[0].get("vmas") is not None:
        head = ["VMAs"] + HEAD[1:]
    elif rows and rows[0].get("sockets") is not None:
        head = ["sockets"] + HEAD[1:]
    elif rows and rows[0].get("procs") is not None:
        head = HEAD[:1] + ["procs"] + HEAD[1:] + ["stop ms/proc"]
    elif rows and rows[0].get("threads") is not None:
        head = HEAD[:1] + ["threads"] + HEAD[1:] + ["stop ms/thr", "spread ms", "criu spread"]
    cells = [head] + [fmt_row(r) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    for c in cells:
        print("  ".join(str(v).rjust(w) for v, w in zip(c, widths)))
    for r in rows:
        for k in ("error", "criu_error"):
            if k in r:
                thr = "" if r.get("threads") is None else f", {r['threads']} threads"
                if r.get("sockets") is not None:
                    thr = f", {r['sockets']}"
                if r.get("vmas") is not None:
                    thr = f", {r['vmas']} VMAs"
                if r.get("fds") is not None:
                    thr = f", {r['fds']} fds"
                if r.get("procs") is not None:
                    thr = f", {r['procs']} processes"
                print(f"{r['size_mib']} MiB{thr} to {r['dest']}: {k}: {r[k]}")
    print("cap/limit and rst/limit: the limit's time over ours (1.0 = as fast as the limit; "
          "the goal for capture is >= 0.8). ours/criu: our time over CRIU's (< 1 = faster).")
    if head is not HEAD and rows[0].get("procs") is not None and SHARED_MIB:
        print(f"every tree also shares {SHARED_MIB} MiB of MAP_SHARED anonymous memory "
              "(stored once: it is in every image size once, not per process).")
    if head is not HEAD and rows[0].get("threads") is not None:
        print("stop ms/thr: stopped s / threads. spread ms: max - min of the moments the restored "
              "threads resumed (release + scheduler noise; 2 CPUs).")


class FreezeTarget:
    """bench/freeze.c: MIB MiB written at RATE pages/s, measuring its longest gap."""

    def __init__(self, helpers, mib, rate, workdir):
        self.dir = Path(tempfile.mkdtemp(prefix="freeze-", dir=workdir))
        self.report = self.dir / "report"
        self.proc = subprocess.Popen(
            [helpers / "freeze", self.report, str(mib), str(rate)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.pid = self.proc.pid
        self.wait("READY", 600)

    def lines(self):
        try:
            return self.report.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait(self, prefix, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for l in self.lines():
                if l.startswith(prefix):
                    return l
            time.sleep(0.01)
        raise RuntimeError(f"freeze target: no {prefix!r} after {timeout} s: {self.lines()}")

    def mark(self):
        (self.dir / "report.mark").touch()
        self.wait("MARKED", 10)

    def gap_and_fork(self):
        """The longest gap since the mark and the fork() time, in seconds."""
        (self.dir / "report.go").touch()
        self.wait("DONE", 60)
        vals = {}
        for l in self.lines():
            w = l.split()
            if w[0] == "INFO":
                vals[w[1]] = int(w[2]) / 1e6
        return vals["maxgap_us"], vals["fork_us"]

    def close(self):
        kill(self.pid)
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_freeze(tools, helpers, criu, mib, rate, dest_dir, pre_copy=None):
    """One run of each tool on a fresh target; returns the row's values."""
    res = {"size_mib": mib}
    t = FreezeTarget(helpers, mib, rate, dest_dir)
    try:
        image = dest_dir / "image"
        t.mark()
        extra = ["--pre-copy", pre_copy] if pre_copy else []
        secs, r, rss = timed_rss([tools / "psnc-capture", str(t.pid), "-o", image, "--json"]
                                 + extra)
        if r.returncode != 0:
            res["error"] = f"capture: {r.stderr.strip()[-300:]}"
            return res
        res["capture_rss"] = rss
        s = json.loads(r.stdout.strip().splitlines()[-1])
        res["capture_s"] = secs
        res["stopped_s"] = s["stopped_ms"] / 1e3
        res["image_bytes"] = image.stat().st_size
        res["memory_copy"] = s.get("memory_copy")
        res["gap_s"], res["fork_s"] = t.gap_and_fork()
        drop_file(image)
    finally:
        drop_file(dest_dir / "image")
        t.close()
    if criu:
        t = FreezeTarget(helpers, mib, rate, dest_dir)
        cdir = dest_dir / "criu"
        shutil.rmtree(cdir, ignore_errors=True)
        cdir.mkdir()
        try:
            t.mark()
            secs, r = timed([criu, "dump", "-t", str(t.pid), "-D", cdir, "-o", "dump.log",
                             "--leave-running"])
            if r.returncode != 0:
                res["criu_error"] = "dump failed: " + tail_log(cdir / "dump.log")
                return res
            res["criu_dump_s"] = secs
            res["criu_image_bytes"] = sum(f.stat().st_size for f in cdir.iterdir())
            res["criu_gap_s"], _ = t.gap_and_fork()
        finally:
            t.close()
            shutil.rmtree(cdir, ignore_errors=True)
    return res


def freeze_main(args, tools, helpers, criu, sizes, dest_dir):
    """--freeze: rows of min / median over --runs runs."""
    rows = []
    for mib in sizes:
        runs = []
        for i in range(args.runs):
            print(f"... freeze, {mib} MiB at {args.rate} pages/s, run {i + 1}", flush=True)
            runs.append(bench_freeze(tools, helpers, criu, mib, args.rate, dest_dir,
                                     args.pre_copy))
        rows.append((mib, runs))

    def mm(runs, k, scale=1e3, f="{:.1f}"):
        v = sorted(r[k] for r in runs if r.get(k) is not None)
        if not v:
            return "-"
        return f"{f.format(v[0] * scale)} / {f.format(v[len(v) // 2] * scale)}"

    def ratio(runs, a, b):
        v = sorted(r[a] / r[b] for r in runs if r.get(a) is not None and r.get(b))
        return "-" if not v else f"{v[len(v) // 2]:.2f}"

    head = ["memory", "gap ms", "fork ms", "gap/fork", "criu gap ms", "gap/criu",
            "capture s", "criu dump s", "cap/criu", "image MiB", "criu MiB", "rss MiB", "method"]
    cells = [head]
    for mib, runs in rows:
        m = (runs[-1].get("memory_copy") or {})
        method = m.get("method", "-")
        if method == "pre-copy":
            method += f" {m['rounds']} rounds, {m['pages_stopped']} pages stopped"
        cells.append([
            f"{mib} MiB", mm(runs, "gap_s"), mm(runs, "fork_s"), ratio(runs, "gap_s", "fork_s"),
            mm(runs, "criu_gap_s"), ratio(runs, "gap_s", "criu_gap_s"),
            mm(runs, "capture_s", 1, "{:.2f}"), mm(runs, "criu_dump_s", 1, "{:.2f}"),
            ratio(runs, "capture_s", "criu_dump_s"),
            mm(runs, "image_bytes", 1 / MIB, "{:.0f}"),
            mm(runs, "criu_image_bytes", 1 / MIB, "{:.0f}"),
            mm(runs, "capture_rss", 1 / MIB, "{:.0f}"), method])
    print()
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    for c in cells:
        print("  ".join(str(v).rjust(w) for v, w in zip(c, widths)))
    for mib, runs in rows:
        for r in runs:
            for k in ("error", "criu_error"):
                if k in r:
                    print(f"{mib} MiB: {k}: {r[k]}")
    print("gap: the longest time the target did not run during the capture (min / median); "
          "fork: fork() of the same process; gap/fork and gap/criu: medians of the ratios "
          "(< 1 = shorter). The issue's goal: gap <= 20 ms at 1 GiB, <= 50 ms at 4 GiB. "
          "rss: psnc-capture's peak resident set (wait4).")
    return [{"size_mib": mib, "runs": runs} for mib, runs in rows]


def bench_incremental(tools, helpers, criu, mib, touch, rate, dest_dir):
    """One run: a full capture of a running freeze target, --touch of its pages written, an
    incremental capture against it with --kill, then restores of both and a merge."""
    res = {"size_mib": mib}
    pages = mib * MIB // 4096
    t = FreezeTarget(helpers, mib, rate, dest_dir)
    full, incr, merged = dest_dir / "full.img", dest_dir / "incr.img", dest_dir / "merged.img"
    try:
        secs, r = timed([tools / "psnc-capture", str(t.pid), "-o", full, "--json"])
        if r.returncode != 0:
            res["error"] = f"full capture: {r.stderr.strip()[-300:]}"
            return res
        res["full_capture_s"] = secs
        res["full_bytes"] = full.stat().st_size
        # The target writes `rate` random pages per second: about touch * pages of them.
        time.sleep(touch * pages / rate)
        secs, r = timed([tools / "psnc-capture", str(t.pid), "-o", incr, "--json",
                         "--parent", full, "--kill"])
        if r.returncode != 0:
            res["error"] = f"incremental capture: {r.stderr.strip()[-300:]}"
            return res
        t.proc.wait()
        res["incr_capture_s"] = secs
        res["incr_bytes"] = incr.stat().st_size
        s = json.loads(r.stdout.strip().splitlines()[-1])
        res["incr_pages"] = s["pages_stored"]
        res["parent_pages"] = s["parent"]["pages"]
        for name, image in (("restore_chain_s", incr), ("restore_full_s", full)):
            secs, r = timed([tools / "psnc-restore", image])
            if r.returncode != 0:
                res["error"] = f"restore {image.name}: {r.stderr.strip()[-300:]}"
                return res
            res[name] = secs
            pid = int(r.stdout.split()[-1])
            kill(pid)
            # Its parent is init, which reaps it a moment later: the PID must be free again.
            end = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
                time.sleep(0.01)
        secs, r = timed([tools / "psnc-imgtool", "merge", incr, "-o", merged])
        if r.returncode != 0:
            res["error"] = f"merge: {r.stderr.strip()[-300:]}"
            return res
        res["merge_s"] = secs
    finally:
        for f in (full, incr, merged):
            drop_file(f)
        t.close()
    if criu:
        # CRIU's incremental dumps need soft-dirty bits (criu check --feature mem_dirty_track);
        # without them a dump with --prev-images-dir stores everything again.
        r = subprocess.run([criu, "check", "--feature", "mem_dirty_track"],
                           capture_output=True, text=True)
        res["criu_incremental"] = r.returncode == 0
    return res


def incremental_main(args, tools, helpers, criu, sizes, dest_dir):
    """--incremental: one row per size."""
    rows = []
    for mib in sizes:
        print(f"... incremental, {mib} MiB, {args.touch:.1%} of the pages written between",
              flush=True)
        # Slow enough that the writes during the second capture add little to --touch.
        rate = args.rate
        rows.append(bench_incremental(tools, helpers, criu, mib, args.touch, rate, dest_dir))
    head = ["memory", "full MiB", "incr MiB", "incr/full", "pages stored", "from parent",
            "full cap s", "incr cap s", "incr/full", "restore chain s", "restore full s",
            "chain/full", "merge s"]
    cells = [head]
    for r in rows:
        if "error" in r:
            cells.append([f"{r['size_mib']} MiB", r["error"]] + [""] * (len(head) - 2))
            continue
        cells.append([
            f"{r['size_mib']} MiB", f"{r['full_bytes'] / MIB:.0f}", f"{r['incr_bytes'] / MIB:.1f}",
            f"{r['incr_bytes'] / r['full_bytes']:.3f}", r["incr_pages"], r["parent_pages"],
            f"{r['full_capture_s']:.2f}", f"{r['incr_capture_s']:.2f}",
            f"{r['incr_capture_s'] / r['full_capture_s']:.2f}",
            f"{r['restore_chain_s']:.2f}", f"{r['restore_full_s']:.2f}",
            f"{r['restore_chain_s'] / r['restore_full_s']:.2f}", f"{r['merge_s']:.2f}"])
    print()
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    for c in cells:
        print("  ".join(str(v).rjust(w) for v, w in zip(c, widths)))
    print(f"The target writes random pages while it runs, {args.touch:.1%} of them between the "
          "captures (fewer distinct ones: some twice). The issue's goal: incr/full <= 0.03 at "
          "1% touched.")
    if rows and "criu_incremental" in rows[0]:
        print("CRIU in the same run: " + ("soft-dirty tracking available" if
              rows[0]["criu_incremental"] else "no soft-dirty tracking on this kernel "
              "(criu check --feature mem_dirty_track fails), so its incremental dump stores "
              "every page again: no comparison"))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="64,1024,4096", help="MiB, comma-separated")
    p.add_argument("--dests", default="tmpfs,disk")
    p.add_argument("--tmpfs", default=None, help="tmpfs directory (default: a private mount)")
    p.add_argument("--disk", default="/var/tmp", help="directory on a disk file system")
    p.add_argument("--criu", default=None, help="criu 4.1 binary, or 'none'")
    p.add_argument("--tools-dir", default=None, help="where psnc-capture/psnc-restore are")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--tree", default=None,
                   help="process counts, comma-separated: use the tree target (bench/tree.c)")
    p.add_argument("--shared-mib", type=int, default=0,
                   help="with --tree: MiB of MAP_SHARED anonymous memory the tree shares")
    p.add_argument("--sockets", default=None,
                   help="KIND:COUNT, comma-separated (unix:10000,tcp:1000): the sockets target")
    p.add_argument("--vmas", default=None,
                   help="VMA counts, comma-separated (60000): one-page VMAs (tests/targets/vmas.c)")
    p.add_argument("--fds", default=None,
                   help="fd counts, comma-separated (19000): fds on one file (tests/targets/fds.c)")
    p.add_argument("--threads", default=None,
                   help="thread counts, comma-separated: use the threads target (bench/threads.c)")
    p.add_argument("--freeze", action="store_true",
                   help="the freeze a running, writing target sees (bench/freeze.c)")
    p.add_argument("--rate", type=int, default=1000,
                   help="with --freeze: random pages the target writes per second")
    p.add_argument("--runs", type=int, default=2, help="with --freeze: runs per size")
    p.add_argument("--pre-copy", default=None,
                   help="with --freeze: psnc-capture's --pre-copy (auto, fork, never)")
    p.add_argument("--lazy", action="store_true",
                   help="also restore each image with psnc-restore --lazy (one-process targets)")
    p.add_argument("--incremental", action="store_true",
                   help="an incremental capture (--parent) after --touch of the pages changed")
    p.add_argument("--touch", type=float, default=0.01,
                   help="with --incremental: fraction of the pages written between the captures")
    args = p.parse_args()
    global SHARED_MIB, LAZY
    SHARED_MIB = args.shared_mib
    LAZY = args.lazy
    if os.geteuid() != 0:
        sys.exit("bench.py: run as root (ptrace of the target, same-PID restore, tmpfs mount)")
    tools, helpers = build(args)
    criu = find_criu(args.criu)
    print(f"criu: {criu or 'not available'}")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    mounted = None
    try:
        for dest in args.dests.split(","):
            if dest == "tmpfs":
                if args.tmpfs:
                    base = Path(args.tmpfs)
                else:
                    base = Path(tempfile.mkdtemp(prefix="psnc-bench-tmpfs-"))
                    per = max(int(x) for x in args.tree.split(",")) if args.tree else 1
                    need = 2 * (max(sizes) * per + args.shared_mib) * MIB + 512 * MIB
                    sh(["mount", "-t", "tmpfs", "-o", f"size={need}", "psnc-bench", base])
                    mounted = base
            else:
                base = Path(args.disk)
            dest_dir = Path(tempfile.mkdtemp(prefix="psnc-bench-", dir=base))
            try:
                if args.incremental:
                    out = incremental_main(args, tools, helpers, criu, sizes, dest_dir)
                    if args.json:
                        Path(args.json).write_text(json.dumps(out, indent=2))
                    return
                if args.freeze:
                    out = freeze_main(args, tools, helpers, criu, sizes, dest_dir)
                    if args.json:
                        Path(args.json).write_text(json.dumps(out, indent=2))
                    return
                if args.sockets is not None:
                    for spec in args.sockets.split(","):
                        kind, _, count = spec.partition(":")
                        print(f"... {count} {kind} connections to {dest} ({dest_dir})",
                              flush=True)
                        rows.append(bench_one(args, tools, helpers, criu, 0, dest, dest_dir,
                                              sockets=(kind, int(count))))
                    sizes = []
                # The per-object targets: one row per count, --sizes ignored.
                for key, what in (("fds", "fds"), ("vmas", "VMAs")):
                    if getattr(args, key) is None:
                        continue
                    for n in [int(x) for x in getattr(args, key).split(",")]:
                        print(f"... {n} {what} to {dest} ({dest_dir})", flush=True)
                        rows.append(bench_one(args, tools, helpers, criu, 0, dest, dest_dir,
                                              **{key: n}))
                    sizes = []
                for mib in sizes:
                    if args.tree is not None:
                        for n in [int(x) for x in args.tree.split(",")]:
                            print(f"... {n} processes, {mib} MiB each to {dest} ({dest_dir})",
                                  flush=True)
                            rows.append(bench_one(args, tools, helpers, criu, mib, dest,
                                                  dest_dir, procs=n))
                        continue
                    if args.threads is None:
                        print(f"... {mib} MiB to {dest} ({dest_dir})", flush=True)
                        rows.append(bench_one(args, tools, helpers, criu, mib, dest, dest_dir))
                        continue
                    for n in [int(x) for x in args.threads.split(",")]:
                        print(f"... {n} threads, {mib} MiB to {dest} ({dest_dir})", flush=True)
                        rows.append(bench_one(args, tools, helpers, criu, mib, dest, dest_dir, n))
            finally:
                shutil.rmtree(dest_dir, ignore_errors=True)
            if mounted:
                subprocess.run(["umount", mounted])
                os.rmdir(mounted)
                mounted = None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mounted])
    print()
    print_table(rows)
    print_lazy(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if any("error" in r or r.get("restored_ok") is False for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
