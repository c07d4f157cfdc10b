//! Helpers shared by imgtool's integration tests: example images with edits, and running the
//! real binary.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use psnc_format::digest::sha256;
use psnc_format::example::{example_checkpoint, example_runs, page_pattern, write_example};
use psnc_format::model::{Arch, Checkpoint, VmaKind};
use psnc_format::{ImageWriter, LayoutClass};

/// The example's stored executable, as `write_example` stores it.
pub fn exe_bytes() -> Vec<u8> {
    (0..8192u32).map(|i| (i % 253) as u8).collect()
}

/// The example image of `arch` in `class`, exactly as the format crate writes it.
pub fn example(arch: Arch, class: LayoutClass) -> Vec<u8> {
    write_example(Vec::new(), arch, class).expect("write example")
}

/// The example image after `edit` changed its model and its page runs `(addr, bytes)`;
/// with an edit that does nothing this is byte for byte `example(arch, class)`.
pub fn example_with(
    arch: Arch,
    class: LayoutClass,
    edit: impl FnOnce(&mut Checkpoint, &mut Vec<(u64, Vec<u8>)>),
) -> Vec<u8> {
    let w = ImageWriter::new(Vec::new(), class).expect("writer");
    let (w, ck) = fill_example(w, arch, edit);
    w.finish(ck).expect("finish")
}

/// Writes the (edited) example's pages and executable into `w`; returns the writer, ready for
/// more (`copy_unknown_section`) and one of the finishes, and the model to finish it with.
pub fn fill_example<W: Write>(
    mut w: ImageWriter<W>,
    arch: Arch,
    edit: impl FnOnce(&mut Checkpoint, &mut Vec<(u64, Vec<u8>)>),
) -> (ImageWriter<W>, Checkpoint) {
    let mut ck = example_checkpoint(arch);
    let mut runs: Vec<(u64, Vec<u8>)> = example_runs(arch)
        .into_iter()
        .map(|(a, n)| (a, page_pattern(a, n)))
        .collect();
    edit(&mut ck, &mut runs);
    let p = &mut ck.processes[0];
    for (addr, bytes) in &runs {
        p.pages.push(w.write_pages(*addr, bytes).expect("pages"));
    }
    let exe = exe_bytes();
    p.exe.stored = Some(w.store_file(&p.exe.path, &exe).expect("store exe"));
    p.exe.identity.sha256 = sha256(&exe);
    let exe_ref = p.exe.clone();
    for v in p.vmas.iter_mut().filter(|v| v.kind == VmaKind::File) {
        v.file = Some(exe_ref.clone());
    }
    (w, ck)
}

/// The example written to a seekable output (`finish_seekable`: table offset in the header).
pub fn example_seekable(arch: Arch, class: LayoutClass) -> Vec<u8> {
    let w = ImageWriter::new(std::io::Cursor::new(Vec::new()), class).expect("writer");
    let (w, ck) = fill_example(w, arch, |_, _| {});
    w.finish_seekable(ck).expect("finish").into_inner()
}

/// Writes `bytes` to `dir/name`.
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write image");
    p
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

fn finish(out: std::process::Output) -> Run {
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `psnc-imgtool ARGS` with stdin closed.
pub fn imgtool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_psnc-imgtool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run psnc-imgtool");
    finish(out)
}

/// Runs `psnc-imgtool ARGS` with `input` on stdin; returns stdout as bytes too.
pub fn imgtool_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], input: &[u8]) -> (Run, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_psnc-imgtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psnc-imgtool");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The tool may exit before reading everything (an error); that is not this test's failure.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread");
    let raw = out.stdout.clone();
    (finish(out), raw)
}

/// Parses stdout as JSON, failing the test with the output when it is not.
pub fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", r.stdout))
}
