//! One exit-status scheme for the three tools (psnc-cli): the same bad image gives the same
//! status from psnc-restore and from every imgtool subcommand, and every tool's --help words the
//! statuses they share the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use psnc_cli::Exit;
use psnc_tests::{package_dir, restore_run, run, tool, write_file, RunOpts, ToolRun, WorkDir};

/// The 64-bit example image of spec/examples.
fn example() -> Vec<u8> {
    let p = package_dir().join("../spec/examples/example-64.psnc");
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn imgtool(args: &[&str]) -> ToolRun {
    run(&tool("psnc-imgtool"), args, RunOpts::default())
}

/// Every way the tools take an image in, with `bad` as the image (and `good` as the other one
/// for diff): (what, run).
fn every_reader(bad: &Path, good: &Path, out: &Path) -> Vec<(&'static str, ToolRun)> {
    let (b, g, o) = (
        bad.to_str().expect("utf-8"),
        good.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    );
    vec![
        ("psnc-restore", restore_run(bad, &[], RunOpts::default())),
        ("imgtool info", imgtool(&["info", b])),
        ("imgtool info --json", imgtool(&["info", b, "--json"])),
        ("imgtool dump", imgtool(&["dump", b])),
        (
            "imgtool dump --addr",
            imgtool(&["dump", b, "--addr", "0x400000"]),
        ),
        ("imgtool verify", imgtool(&["verify", b])),
        ("imgtool verify --json", imgtool(&["verify", b, "--json"])),
        ("imgtool diff bad good", imgtool(&["diff", b, g])),
        ("imgtool diff good bad", imgtool(&["diff", g, b])),
        (
            "imgtool convert --to 64",
            imgtool(&["convert", b, "--to", "64", "-o", o]),
        ),
        (
            "imgtool convert --to 32",
            imgtool(&["convert", b, "--to", "32", "-o", o]),
        ),
    ]
}

#[test]
fn a_bad_image_gives_the_same_status_from_every_tool() {
    let dir = WorkDir::new("exit-bad");
    let good_bytes = example();
    let good = dir.join("good.psnc");
    write_file(&good, &good_bytes);
    let out = dir.join("out.psnc");
    let corrupt: Vec<(&str, Vec<u8>)> = vec![
        (
            "not an image",
            b"this is not a psnc-cr image at all".to_vec(),
        ),
        ("foreign magic", {
            let mut b = good_bytes.clone();
            b[0] ^= 0xff;
            b
        }),
        ("unsupported major version", {
            let mut b = good_bytes.clone();
            b[8] = 9;
            b
        }),
        ("truncated", good_bytes[..good_bytes.len() / 2].to_vec()),
        ("flipped byte in the metadata", {
            let mut b = good_bytes.clone();
            let n = b.len();
            b[n - 200] ^= 0x01;
            b
        }),
    ];
    for (what, bytes) in corrupt {
        let bad = dir.join("bad.psnc");
        write_file(&bad, &bytes);
        for (reader, r) in every_reader(&bad, &good, &out) {
            assert_eq!(
                r.code,
                Some(i32::from(Exit::BadImage.code())),
                "{what}: {reader}:\n{r}"
            );
            assert!(!r.stderr.contains("panicked at"), "{what}: {reader}:\n{r}");
        }
        assert!(!out.exists(), "{what}: convert left {}", out.display());
    }
    let missing = dir.join("missing.psnc");
    for (reader, r) in every_reader(&missing, &good, &out) {
        r.assert_status(i32::from(Exit::NoInput.code()));
        assert!(r.stderr.contains("No such file"), "{reader}:\n{r}");
    }
}

/// The `Exit status:` block of a --help text: code -> its line.
fn status_lines(help: &str) -> BTreeMap<String, String> {
    let block = help
        .split_once("Exit status:\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no Exit status: block in\n{help}"));
    block
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let code = l.split_whitespace().next().unwrap_or_default().to_string();
            (code, l.to_string())
        })
        .collect()
}

fn help_of(program: PathBuf, args: &[&str]) -> String {
    let r = run(&program, args, RunOpts::default());
    r.assert_ok();
    r.stdout
}

#[test]
fn every_help_words_the_shared_statuses_the_same_way() {
    let mut helps: Vec<(String, String)> = vec![
        (
            "psnc-capture".into(),
            help_of(tool("psnc-capture"), &["--help"]),
        ),
        (
            "psnc-restore".into(),
            help_of(tool("psnc-restore"), &["--help"]),
        ),
        (
            "psnc-imgtool".into(),
            help_of(tool("psnc-imgtool"), &["--help"]),
        ),
    ];
    for sub in ["info", "dump", "verify", "diff", "convert"] {
        helps.push((
            format!("psnc-imgtool {sub}"),
            help_of(tool("psnc-imgtool"), &[sub, "--help"]),
        ));
    }
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (who, help) in &helps {
        let lines = status_lines(help);
        for (code, line) in lines {
            if let Ok(n) = code.parse::<u8>() {
                let e = Exit::ALL
                    .iter()
                    .find(|e| e.code() == n)
                    .unwrap_or_else(|| panic!("{who} lists {n}, which is not in the scheme"));
                assert_eq!(line, format!("  {:<4}{}", n, e.meaning()), "{who}");
            }
            if let Some((first, l)) = seen.get(&code) {
                assert_eq!(&line, l, "{who} and {first} word status {code} differently");
            } else {
                seen.insert(code, (who.clone(), line));
            }
        }
    }
    // Every shared failure status is documented by someone, and 0 and 64 by everyone.
    for code in ["0", "1", "3", "64", "65", "66", "69", "70", "73", "77"] {
        assert!(seen.contains_key(code), "no --help lists status {code}");
    }
    for (who, help) in &helps {
        let lines = status_lines(help);
        assert!(
            lines.contains_key("0") && lines.contains_key("64"),
            "{who}:\n{help}"
        );
    }
}
