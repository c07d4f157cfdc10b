//! Benchmark: what the image format costs over plain `write`/`read` of the same bytes.
//!
//! Writes and reads a synthetic image of `--size-mib` MiB (default 1024) of page data on tmpfs
//! (`--dir`, default /dev/shm), and in the same run writes and reads the same bytes as a plain
//! file with the same write size. Prints throughput and the ratio format time / plain time; the
//! target is at most 1.20 for both directions.
//!
//! - write: `ImageWriter::write_pages` in runs of `--run-kib` KiB, `finish_seekable`, atomic
//!   commit; plain: `write(2)` of the same runs to a new file.
//! - read: `Image::open`, `verify_data` (every chunk digest), then every page touched through
//!   `page_bytes`; plain: `read(2)` of the whole file into a buffer of the run size.
//!
//! Each round prints both ratios and, in parentheses, the ratio of CPU time (all threads), then
//! the CPU time of the calling thread and of the helper threads (the writer's hashing thread,
//! the reader's verify threads). The summary gives the median ratio, the ratio of the best
//! times, and a critical-path estimate from the per-thread CPU times: on a machine shared with
//! other work the wall times of single rounds vary, the CPU times much less.
//!
//! Not part of the test suite. Run it in release:
//! `cargo run --release -p psnc-format --example format_bench -- --size-mib 1024 --rounds 3`

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use psnc_format::model::{Arch, Checkpoint, Vma, VmaKind};
use psnc_format::verify::check_model;
use psnc_format::{AtomicFile, Image, ImageWriter, LayoutClass};

type Error = Box<dyn std::error::Error>;

struct Options {
    size_mib: usize,
    run_kib: usize,
    dir: PathBuf,
    rounds: usize,
}

fn options() -> Result<Options, Error> {
    let mut o = Options {
        size_mib: 1024,
        run_kib: 256,
        dir: PathBuf::from("/dev/shm"),
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--size-mib" => o.size_mib = value()?.parse()?,
            "--run-kib" => o.run_kib = value()?.parse()?,
            "--dir" => o.dir = PathBuf::from(value()?),
            "--rounds" => o.rounds = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: format_bench [--size-mib N] [--run-kib K] [--dir DIR] [--rounds R]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if o.run_kib == 0 || o.run_kib % 4 != 0 || o.size_mib == 0 || o.rounds == 0 {
        return Err("sizes must be positive and runs a multiple of 4 KiB".into());
    }
    Ok(o)
}

/// Incompressible-looking data (xorshift), so nothing downstream can take a shortcut.
fn synthetic(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for w in v.chunks_exact_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        w.copy_from_slice(&s.to_le_bytes());
    }
    v
}

const BASE: u64 = 0x7f00_0000_0000;

/// Wall-clock and CPU time (user + system) of one phase: of all threads, and of the calling
/// thread alone. On a shared machine the wall time depends on what else runs; the CPU times show
/// the work the phase costs and how it is split between threads.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
    caller: f64,
}

impl Cost {
    /// The phase's wall time on an otherwise idle machine with enough cores: the caller's CPU
    /// time, or the helper threads' if longer (the writer's hashing thread runs alongside the
    /// caller), or for the reader's parallel verify, the caller plus the helpers' share per core.
    fn critical_path(&self, helpers_in_parallel_with_caller: bool) -> f64 {
        let helpers = (self.cpu - self.caller).max(0.0);
        if helpers_in_parallel_with_caller {
            self.caller.max(helpers)
        } else {
            self.caller + helpers / cores() as f64
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_seconds(who: nix::sys::resource::UsageWho) -> f64 {
    nix::sys::resource::getrusage(who).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

fn measure<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<(Cost, T), Error> {
    use nix::sys::resource::UsageWho::{RUSAGE_SELF, RUSAGE_THREAD};
    let (c, m, t) = (
        cpu_seconds(RUSAGE_SELF),
        cpu_seconds(RUSAGE_THREAD),
        Instant::now(),
    );
    let v = f()?;
    let wall = t.elapsed().as_secs_f64();
    Ok((
        Cost {
            wall,
            cpu: cpu_seconds(RUSAGE_SELF) - c,
            caller: cpu_seconds(RUSAGE_THREAD) - m,
        },
        v,
    ))
}

fn plain_write(path: &Path, data: &[u8], run: usize) -> Result<(), Error> {
    let mut f = File::create(path)?;
    for chunk in data.chunks(run) {
        f.write_all(chunk)?;
    }
    f.sync_all()?;
    Ok(())
}

fn format_write(path: &Path, data: &[u8], run: usize) -> Result<(), Error> {
    let mut ck: Checkpoint = psnc_format::example::example_checkpoint(Arch::X86_64);
    let p = &mut ck.processes[0];
    let mut w = ImageWriter::new(AtomicFile::create(path)?, LayoutClass::Bits64)?;
    for (i, chunk) in data.chunks(run).enumerate() {
        p.pages.push(w.write_pages(BASE + (i * run) as u64, chunk)?);
    }
    p.vmas.push(Vma {
        start: BASE,
        end: BASE + data.len() as u64,
        prot: 3,
        kind: VmaKind::Anonymous,
        ..Default::default()
    });
    p.vmas.sort_by_key(|v| v.start);
    w.finish_seekable(ck)?.commit()?;
    Ok(())
}

fn plain_read(path: &Path, run: usize) -> Result<u64, Error> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; run];
    let (mut total, mut sum) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        // Touch every page of what was read, like the format reader does.
        sum = buf[..n]
            .iter()
            .step_by(4096)
            .fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
        total += n as u64;
    }
    std::hint::black_box(sum);
    Ok(total)
}

/// Touches every stored page through `page_bytes`; returns the number of pages.
fn touch_pages(img: &Image) -> Result<u64, Error> {
    let (mut sum, mut pages) = (0u64, 0u64);
    for p in &img.checkpoint().processes {
        for run in &p.pages {
            let b = img.page_bytes(run)?;
            sum = b
                .iter()
                .step_by(4096)
                .fold(sum, |s, &x| s.wrapping_add(u64::from(x)));
            pages += run.pages;
        }
    }
    std::hint::black_box(sum);
    Ok(pages)
}

fn main() -> Result<(), Error> {
    let o = options()?;
    let len = o.size_mib << 20;
    let run = o.run_kib << 10;
    let data = synthetic(len);
    let plain = o.dir.join(format!("psnc-bench-{}.bin", std::process::id()));
    let image = o
        .dir
        .join(format!("psnc-bench-{}.psnc", std::process::id()));
    let _cleanup = Cleanup(vec![plain.clone(), image.clone()]);
    println!(
        "{} MiB in runs of {} KiB on {}, {} rounds, {} CPUs",
        o.size_mib,
        o.run_kib,
        o.dir.display(),
        o.rounds,
        cores()
    );
    let t = Instant::now();
    std::hint::black_box(psnc_format::digest::sha256(&data));
    println!(
        "reference: sha256 on one core {:.2} GB/s",
        gbps(len, t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    std::hint::black_box(psnc_format::digest::chunk_digests(&data, 1 << 20));
    println!(
        "reference: chunk digests on all cores {:.2} GB/s",
        gbps(len, t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    let mut h = psnc_format::digest::ChunkHasher::new(1 << 20);
    for chunk in data.chunks(run) {
        h.update(chunk);
    }
    std::hint::black_box(h.finish());
    println!(
        "reference: streaming chunk hasher (the writer's, no I/O) {:.2} GB/s",
        gbps(len, t.elapsed().as_secs_f64())
    );
    println!();
    println!("round  plain-write  format-write  ratio (cpu)      plain-read  format-read  ratio (cpu)   no-verify");
    let (mut wr, mut rr) = (Vec::new(), Vec::new());
    // Best wall time of: plain write, format write, plain read, format read, format read
    // without verify_data; and the CPU time of the same rounds.
    let mut best = [f64::MAX; 5];
    let mut cpu = [0f64; 5];
    let mut path = [f64::MAX; 5];
    for round in 1..=o.rounds {
        let (pw, ()) = measure(|| plain_write(&plain, &data, run))?;
        let (fw, ()) = measure(|| format_write(&image, &data, run))?;
        let (pr, n) = measure(|| plain_read(&plain, run))?;
        if n != len as u64 {
            return Err("short plain read".into());
        }
        let (fr, img) = measure(|| {
            let img = Image::open(&image)?;
            img.verify_data()?;
            touch_pages(&img)?;
            Ok(img)
        })?;
        // Outside the timing: the image holds the bytes written and a valid model.
        if img.page_data().get(..len) != Some(&data[..]) {
            return Err("the image does not hold the bytes written".into());
        }
        check_model(
            img.checkpoint(),
            img.page_data().len() as u64,
            img.file_data().len() as u64,
        )?;
        drop(img);
        let (fn_, _) = measure(|| {
            let img = Image::open(&image)?;
            touch_pages(&img)
        })?;
        fs::remove_file(&plain)?;
        fs::remove_file(&image)?;
        let (w, r) = (fw.wall / pw.wall, fr.wall / pr.wall);
        println!(
            "{round:>5}  {:>6.2} GB/s  {:>7.2} GB/s  {w:>5.2} ({:.2})   {:>6.2} GB/s  {:>6.2} GB/s  {r:>5.2} ({:.2})  {:>6.2} GB/s",
            gbps(len, pw.wall),
            gbps(len, fw.wall),
            fw.cpu / pw.cpu,
            gbps(len, pr.wall),
            gbps(len, fr.wall),
            fr.cpu / pr.cpu,
            gbps(len, fn_.wall),
        );
        println!(
            "       cpu caller/helpers: plain-write {:.3}/{:.3}  format-write {:.3}/{:.3}  plain-read {:.3}/{:.3}  format-read {:.3}/{:.3}",
            pw.caller, pw.cpu - pw.caller, fw.caller, fw.cpu - fw.caller, pr.caller, pr.cpu - pr.caller, fr.caller, fr.cpu - fr.caller
        );
        wr.push(w);
        rr.push(r);
        for (i, c) in [pw, fw, pr, fr, fn_].into_iter().enumerate() {
            best[i] = best[i].min(c.wall);
            cpu[i] += c.cpu;
            // The format writer's hashing thread runs alongside the caller; the reader's
            // verify threads run while the caller waits.
            path[i] = path[i].min(c.critical_path(i == 1));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!();
    println!(
        "median ratio format/plain: write {:.2}, read {:.2} (target <= 1.20)",
        median(&mut wr),
        median(&mut rr)
    );
    // On a shared machine other work inflates single rounds; the best times show what the code
    // can do, the CPU times what it costs.
    println!(
        "best-of-{} ratio format/plain: write {:.2} ({:.2} vs {:.2} GB/s), read {:.2} ({:.2} vs {:.2} GB/s), \
         read without verify_data {:.2}",
        o.rounds,
        best[1] / best[0],
        gbps(len, best[1]),
        gbps(len, best[0]),
        best[3] / best[2],
        gbps(len, best[3]),
        gbps(len, best[2]),
        best[4] / best[2],
    );
    println!(
        "CPU time format/plain (all threads): write {:.2} ({:.2} vs {:.2} s), read {:.2} ({:.2} vs {:.2} s)",
        cpu[1] / cpu[0],
        cpu[1] / o.rounds as f64,
        cpu[0] / o.rounds as f64,
        cpu[3] / cpu[2],
        cpu[3] / o.rounds as f64,
        cpu[2] / o.rounds as f64,
    );
    println!(
        "critical path from per-thread CPU time (what an idle {}-core machine would show): \
         write {:.2}, read {:.2}",
        cores(),
        path[1] / path[0],
        path[3] / path[2],
    );
    Ok(())
}

/// Removes the benchmark's files however `main` ends: 1 GiB files must not stay in tmpfs.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}
