//! The real `psnc-imgtool` binary on example images of both layout classes: output, JSON, and
//! exact exit codes (0 ok / valid / equal, 1 invalid / different / refused, 2 error).

mod common;

use common::*;
use psnc_format::example::{example_runs, page_pattern};
use psnc_format::model::{Arch, Regs};
use psnc_format::sections::kind_name;
use psnc_format::{Image, LayoutClass, SectionKind};

const BOTH: [(Arch, LayoutClass, &str); 2] = [
    (Arch::X86_64, LayoutClass::Bits64, "64-bit"),
    (Arch::I386, LayoutClass::Bits32, "32-bit"),
];

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn the_test_helper_writes_the_example_byte_for_byte() {
    for (arch, class, _) in BOTH {
        assert_eq!(
            example_with(arch, class, |_, _| {}),
            example(arch, class),
            "{arch:?}"
        );
    }
}

#[test]
fn info_summarizes_both_classes_as_table_and_json() {
    let dir = tmp();
    for (arch, class, bits) in BOTH {
        let img = save(dir.path(), "img.psnc", &example(arch, class));
        let r = imgtool(&["info".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for want in [
            bits,
            "example --count",
            "6.18.0-example",
            "2026-01-01T00:00:00Z",
            "AuthenticAMD",
            "/usr/bin/example",
            "open file descriptions shared by several fds (restored shared):",
            "42:3 42:12",
        ] {
            assert!(
                r.stdout.contains(want),
                "info lacks {want:?}:\n{}",
                r.stdout
            );
        }
        let r = imgtool(&["info".as_ref(), img.as_os_str(), "--json".as_ref()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["format"]["layout_class"], bits);
        assert_eq!(
            v["format"]["version"],
            format!("1.{}", psnc_format::FORMAT_MINOR)
        );
        assert_eq!(
            v["shared_fds"],
            serde_json::json!([{ "fds": [[42, 3], [42, 12]], "resource": "/tmp/example.log" }])
        );
        assert_eq!(v["identity"]["xsave_size"], 832);
        assert_eq!(v["counts"]["processes"], 1);
        assert_eq!(v["counts"]["threads"], 1);
        assert_eq!(v["counts"]["vmas"], 7);
        assert_eq!(v["stored"]["pages"], 6);
        assert_eq!(v["stored"]["page_bytes"], 6 * 4096);
        assert_eq!(v["stored"]["file_bytes"], 8192);
        assert_eq!(v["files"][0]["path"], "/usr/bin/example");
        assert_eq!(v["tree"][0]["pid"], 42);
        assert_eq!(
            v["tree"][0]["arch"],
            if arch == Arch::I386 { "i386" } else { "x86_64" }
        );
        assert_eq!(
            v["tree"][0]["cmdline"],
            serde_json::json!(["example", "--count"])
        );
    }
}

#[test]
fn info_reads_an_image_from_stdin() {
    let (r, _) = imgtool_stdin(
        &["info", "-", "--json"],
        &example(Arch::I386, LayoutClass::Bits32),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["format"]["layout_class"], "32-bit");
}

#[test]
fn missing_images_exit_66_corrupt_ones_65_bad_arguments_64() {
    let dir = tmp();
    let r = imgtool(&["info".as_ref(), dir.path().join("missing").as_os_str()]);
    assert_eq!(r.code, 66);
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
    let junk = save(
        dir.path(),
        "junk",
        b"this is not an image at all, not even close to one.",
    );
    let r = imgtool(&["dump".as_ref(), junk.as_os_str()]);
    assert_eq!(r.code, 65);
    assert!(r.stderr.contains("not a psnc-cr image"), "{}", r.stderr);
    let r = imgtool(&["info", "--bogus-flag"]);
    assert_eq!(r.code, 64, "usage errors exit 64");
}

#[test]
fn dump_prints_every_section_of_both_classes() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let img = save(dir.path(), "img.psnc", &example(arch, class));
        let r = imgtool(&["dump".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for k in SectionKind::ALL {
            assert!(
                r.stdout.contains(&format!("== {} ==", k.name())),
                "no {k} in dump"
            );
        }
        let (ip, ip_name) = if arch == Arch::I386 {
            ("eip: 0x8049000", "eip")
        } else {
            ("rip: 0x401000", "rip")
        };
        for want in [
            "== section table ==",
            ip,
            "start_stack:",
            "AT_PAGESZ",
            "Reissue",
            "posix_timers",
            "(\"example\" \"--count\")",
        ] {
            assert!(r.stdout.contains(want), "dump lacks {want:?}");
        }

        let r = imgtool(&["dump".as_ref(), img.as_os_str(), "--json".as_ref()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["sections"].as_array().map(Vec::len), Some(15));
        for k in SectionKind::ALL {
            assert!(v.get(k.name()).is_some(), "no {k} in JSON dump");
        }
        assert_eq!(v["header"]["class"], class.to_string());
        assert_eq!(
            v["threads"][0]["regs"][ip_name],
            if arch == Arch::I386 {
                0x804_9000
            } else {
                0x40_1000
            }
        );
        assert_eq!(v["vmas"].as_array().map(Vec::len), Some(7));
        assert_eq!(v["page-index"].as_array().map(Vec::len), Some(5));
        assert_eq!(
            v["signals"][0]["actions"].as_array().map(Vec::len),
            Some(64)
        );
        assert_eq!(v["chunk-digests"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["event-fds"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            v["event-fds"][1]["state"]["timerfd"]["settime_flags"], 3,
            "{}",
            v["event-fds"]
        );
        assert_eq!(v["event-fds"][3]["state"]["inotify"]["watches"][1]["wd"], 3);
        assert_eq!(
            v["fd-shares"],
            serde_json::json!([{ "fds": [{ "pid": 42, "fd": 3 }, { "pid": 42, "fd": 12 }] }])
        );
    }
}

#[test]
fn info_and_dump_show_aio_contexts() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let bytes = example_with(arch, class, |ck, _| {
            ck.processes[0].aio = vec![psnc_format::model::AioContext {
                ring: 0x6000_0000,
                ring_len: 4096,
                nr_events: 127,
                head: 126,
                tail: 1,
                events: vec![0xab; 64],
            }];
        });
        let img = save(dir.path(), "img.psnc", &bytes);
        let r = imgtool(&["info".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("AIO contexts:"), "{}", r.stdout);
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("0x60000000"))
            .unwrap_or_else(|| panic!("no context line:\n{}", r.stdout));
        let cols: Vec<&str> = line.split_whitespace().filter(|c| *c != "|").collect();
        assert_eq!(
            cols,
            ["42", "0x60000000", "4096", "(4.0", "KiB)", "127", "2"],
            "{line}"
        );
        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--section".as_ref(),
            "aio".as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["sections"][0]["kind"], 17);
        let a = &v["aio"][0];
        assert_eq!(
            (
                &a["pid"],
                &a["context"],
                &a["nr_events"],
                &a["head"],
                &a["tail"]
            ),
            (
                &42.into(),
                &"0x60000000".into(),
                &127.into(),
                &126.into(),
                &1.into()
            )
        );
        assert_eq!(a["completed_events"], "ab".repeat(64));
    }
}

#[test]
fn info_and_dump_show_inet_sockets() {
    use psnc_format::model::{Fd, FdKind, InetAddr, InetSocket, InetState, SockOption};
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let bytes = example_with(arch, class, |ck, _| {
            ck.processes[0].fds.push(Fd {
                fd: 20,
                flags: 2,
                cloexec: false,
                pos: 0,
                kind: FdKind::InetSocket(InetSocket {
                    family: 10,
                    sock_type: 1,
                    protocol: 6,
                    ino: 9,
                    state: InetState::Listening,
                    local: InetAddr {
                        addr: std::net::Ipv6Addr::LOCALHOST.octets().to_vec(),
                        port: 8080,
                    },
                    peer: None,
                    backlog: 13,
                    options: vec![SockOption {
                        level: 41,
                        name: 26,
                        value: 1,
                    }],
                    tcp: None,
                }),
            });
        });
        let img = save(dir.path(), "img.psnc", &bytes);
        let r = imgtool(&["info".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("IPv4/IPv6 sockets:"), "{}", r.stdout);
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("[::1]:8080"))
            .unwrap_or_else(|| panic!("no socket line:\n{}", r.stdout));
        let cols: Vec<&str> = line.split_whitespace().filter(|c| *c != "|").collect();
        assert_eq!(
            cols,
            [
                "42",
                "20",
                "tcp6",
                "listening",
                "[::1]:8080",
                "-",
                "13",
                "1"
            ],
            "{line}"
        );
        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--section".as_ref(),
            "inet-sockets".as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["sections"][0]["kind"], 18);
        let s = &v["inet-sockets"][0];
        assert_eq!((&s["pid"], &s["fd"]), (&42.into(), &20.into()));
        assert_eq!(s["socket"]["state"], "Listening");
        assert_eq!(s["socket"]["backlog"], 13);
        assert_eq!(s["socket"]["local"]["port"], 8080);
    }
}

#[test]
fn dump_one_section_and_one_pid() {
    let dir = tmp();
    let img = save(
        dir.path(),
        "img.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--section".as_ref(),
        "vmas".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let keys: Vec<&String> = v
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["sections", "vmas"]);
    assert_eq!(v["vmas"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["sections"][0]["name"], "vmas");

    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--section".as_ref(),
        "threads".as_ref(),
        "--pid".as_ref(),
        "42".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("== threads ==") && !r.stdout.contains("== vmas =="));

    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--section".as_ref(),
        "registers".as_ref(),
    ]);
    assert_eq!(r.code, 64);
    assert!(
        r.stderr.contains("chunk-digests"),
        "the error lists the section names: {}",
        r.stderr
    );

    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--pid".as_ref(),
        "7".as_ref(),
    ]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("no process with pid 7"), "{}", r.stderr);
}

fn hex_line(bytes: &[u8]) -> String {
    let h: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}  {}", h[..8].join(" "), h[8..].join(" "))
}

#[test]
fn dump_addr_shows_stored_bytes_and_says_why_others_are_missing() {
    let dir = tmp();
    let img = save(
        dir.path(),
        "img.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--addr".as_ref(),
        "0x402ff0".as_ref(),
        "--len".as_ref(),
        "48".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = page_pattern(0x40_3000, 1);
    assert!(
        r.stdout
            .contains(&format!("00403000: {}", hex_line(&page[..16]))),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("00403010: {}", hex_line(&page[16..32]))),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("00402ff0: -- -- -- --"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("file-backed (/usr/bin/example at offset 0x2ff0)"),
        "{}",
        r.stdout
    );

    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--addr".as_ref(),
        "0x402ff0".as_ref(),
        "--len".as_ref(),
        "48".as_ref(),
        "--json".as_ref(),
    ]);
    let v = json(&r);
    assert_eq!(v["segments"][0]["stored"], false);
    assert_eq!(v["segments"][1]["stored"], true);
    assert_eq!(v["segments"][1]["hex"], hex::encode(&page[..32]));

    for (addr, why) in [
        ("0x7ffc0ffffff0", "provided by the kernel ([vvar])"),
        ("0x404000", "not mapped"),
    ] {
        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--addr".as_ref(),
            addr.as_ref(),
            "--len".as_ref(),
            "16".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains(why), "{addr}: {}", r.stdout);
    }

    // i386, 32-bit layout: same behaviour.
    let img32 = save(
        dir.path(),
        "img32.psnc",
        &example(Arch::I386, LayoutClass::Bits32),
    );
    let r = imgtool(&[
        "dump".as_ref(),
        img32.as_os_str(),
        "--addr".as_ref(),
        "0x804d000".as_ref(),
        "--len".as_ref(),
        "16".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "0804d000: {}",
            hex_line(&page_pattern(0x804_d000, 1)[..16])
        )),
        "{}",
        r.stdout
    );
}

#[test]
fn dump_addr_says_never_touched_for_anonymous_memory_not_stored() {
    let dir = tmp();
    let bytes = example_with(Arch::X86_64, LayoutClass::Bits64, |_, runs| {
        runs.retain(|r| r.0 != 0x7ffc_0000_0000)
    });
    let img = save(dir.path(), "img.psnc", &bytes);
    let r = imgtool(&[
        "dump".as_ref(),
        img.as_os_str(),
        "--addr".as_ref(),
        "0x7ffc00000ff0".as_ref(),
        "--len".as_ref(),
        "16".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("not stored: never touched"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("[stack]"), "{}", r.stdout);
}

/// Every address where `needle` occurs in the example's stored memory, found independently.
fn expected_hits(arch: Arch, needle: &[u8]) -> Vec<u64> {
    let mut hits = Vec::new();
    for (addr, pages) in example_runs(arch) {
        let b = page_pattern(addr, pages);
        for i in 0..=b.len() - needle.len() {
            if &b[i..i + needle.len()] == needle {
                hits.push(addr + i as u64);
            }
        }
    }
    hits
}

#[test]
fn dump_search_finds_text_and_hex_with_vma_and_context() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let img = save(dir.path(), "img.psnc", &example(arch, class));
        let heap = if arch == Arch::I386 {
            0x804_d000u64
        } else {
            0x40_5000
        };
        let needle = page_pattern(heap, 1)[0x100..0x106].to_vec();
        let want = expected_hits(arch, &needle);
        assert!(!want.is_empty());
        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--search-hex".as_ref(),
            hex::encode(&needle).as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        let got: Vec<u64> = v
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|h| h["addr"].as_u64())
            .collect();
        assert_eq!(got, want, "{arch:?}");
        let first = &v[0];
        assert!(first["vma"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(first["context_hex"]
            .as_str()
            .is_some_and(|s| s.contains(&hex_spaced(&needle))));

        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--search".as_ref(),
            "pqrs".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let n = expected_hits(arch, b"pqrs").len();
        assert!(
            r.stdout.contains(&format!("{n} hit(s) for 70 71 72 73")),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("rw-p [heap]"), "{}", r.stdout);

        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--search".as_ref(),
            "pqrs".as_ref(),
            "--max-hits".as_ref(),
            "2".as_ref(),
        ]);
        assert!(
            r.stdout
                .contains("2 hit(s) for 70 71 72 73 (stopped at --max-hits 2)"),
            "{}",
            r.stdout
        );
    }
}

fn hex_spaced(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn dump_search_finds_bytes_across_adjacent_page_runs() {
    let dir = tmp();
    // Split the example's 2-page anonymous run into two adjacent 1-page runs.
    let bytes = example_with(Arch::X86_64, LayoutClass::Bits64, |_, runs| {
        let i = runs.iter().position(|r| r.0 == 0x40_8000).expect("run");
        let (addr, b) = runs.remove(i);
        runs.insert(i, (addr + 4096, b[4096..].to_vec()));
        runs.insert(i, (addr, b[..4096].to_vec()));
    });
    let img = Image::from_vec(bytes.clone()).expect("open");
    assert_eq!(img.checkpoint().processes[0].pages.len(), 6);
    let path = save(dir.path(), "img.psnc", &bytes);
    let needle = &page_pattern(0x40_8000, 2)[4094..4100];
    let r = imgtool(&[
        "dump".as_ref(),
        path.as_os_str(),
        "--search-hex".as_ref(),
        hex::encode(needle).as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: Vec<u64> = json(&r)
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|h| h["addr"].as_u64())
        .collect();
    assert!(
        got.contains(&0x40_8ffe),
        "hit across the run boundary missing: {got:x?}"
    );
    assert_eq!(got, expected_hits(Arch::X86_64, needle));
}

#[test]
fn dump_rejects_bad_search_and_address_arguments() {
    let dir = tmp();
    let img = save(
        dir.path(),
        "img.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    for args in [
        vec!["--search-hex", "zz"],
        vec!["--search", ""],
        vec!["--addr", "0x400000", "--section", "vmas"],
        vec!["--addr", "nonsense"],
        vec!["--addr", "0xffffffffffffffff", "--len", "2"],
        vec!["--addr", "0x400000", "--len", "1000000000"],
        vec!["--len", "16"],
    ] {
        let mut a = vec!["dump".to_string(), img.display().to_string()];
        a.extend(args.iter().map(|s| s.to_string()));
        let r = imgtool(&a);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stdout);
        assert!(!r.stderr.is_empty(), "{args:?} says nothing");
    }
}

#[test]
fn verify_accepts_both_examples_from_files_and_stdin() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let bytes = example(arch, class);
        let img = save(dir.path(), "img.psnc", &bytes);
        let r = imgtool(&["verify".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(": valid"), "{}", r.stdout);
        let r = imgtool(&["verify".as_ref(), img.as_os_str(), "--json".as_ref()]);
        let v = json(&r);
        assert_eq!(v["valid"], true);
        assert_eq!(v["checks"].as_array().map(Vec::len), Some(4));
        let (r, _) = imgtool_stdin(&["verify", "-"], &bytes);
        assert_eq!(r.code, 0, "{}", r.stdout);
    }
}

#[test]
fn verify_names_the_section_of_a_flipped_byte() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let good = example(arch, class);
        let entries = Image::from_vec(good.clone())
            .expect("open")
            .sections()
            .to_vec();
        for e in entries.iter().filter(|e| e.length > 0) {
            let mut bad = good.clone();
            bad[(e.offset + e.length / 2) as usize] ^= 0x01;
            let img = save(dir.path(), "bad.psnc", &bad);
            let r = imgtool(&["verify".as_ref(), img.as_os_str()]);
            let name = kind_name(e.kind);
            assert_eq!(r.code, 65, "{name}: {}{}", r.stdout, r.stderr);
            assert!(r.stdout.contains("INVALID"), "{}", r.stdout);
            let want = if e.kind == SectionKind::PageData.number()
                || e.kind == SectionKind::FileData.number()
            {
                format!("digest mismatch in section {name}, chunk 0")
            } else {
                format!("digest mismatch in section {name}")
            };
            assert!(r.stdout.contains(&want), "flipped {name}: {}", r.stdout);
        }
    }
}

#[test]
fn verify_catches_a_bad_header_table_and_truncation() {
    let dir = tmp();
    let good = example(Arch::X86_64, LayoutClass::Bits64);
    let img = Image::from_vec(good.clone()).expect("open");
    let table = img.trailer().table_offset as usize;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            {
                let mut b = good.clone();
                b[0] ^= 0xff;
                b
            },
            "not a psnc-cr image",
        ),
        (
            {
                let mut b = good.clone();
                b[table + 20] ^= 0x01;
                b
            },
            "digest mismatch",
        ),
        (good[..good.len() - 100].to_vec(), "trailer"),
        // Padding after the header: no digest covers it, the layout check does.
        (
            {
                let mut b = good.clone();
                b[100] = 1;
                b
            },
            "INVALID: alignment and padding: invalid model: padding byte at offset 100 is not zero",
        ),
        (
            {
                let mut b = good.clone();
                b[8] = 9;
                b
            },
            "version 9.4 is not supported",
        ),
    ];
    for (bytes, want) in cases {
        let p = save(dir.path(), "bad.psnc", &bytes);
        let r = imgtool(&["verify".as_ref(), p.as_os_str()]);
        assert_eq!(r.code, 65, "{want}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(want), "want {want:?}: {}", r.stdout);
    }
    let r = imgtool(&[
        "verify".as_ref(),
        dir.path().join("nothing-here").as_os_str(),
    ]);
    assert_eq!(
        r.code, 66,
        "a missing file is no input, not an invalid image"
    );
}

#[test]
fn verify_catches_broken_model_invariants() {
    let dir = tmp();
    // A page run where the process has no VMA: digests are fine, the model is not.
    let bytes = example_with(Arch::X86_64, LayoutClass::Bits64, |_, runs| {
        runs.push((0x50_0000, vec![7; 4096]));
        runs.sort_by_key(|r| r.0);
    });
    let p = save(dir.path(), "bad.psnc", &bytes);
    let r = imgtool(&["verify".as_ref(), p.as_os_str()]);
    assert_eq!(r.code, 65, "{}", r.stdout);
    assert!(
        r.stdout.contains("INVALID: model invariants"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("lies in no vma"), "{}", r.stdout);
}

fn set_rip(ck: &mut psnc_format::model::Checkpoint, rip: u64) {
    if let Regs::X86_64(r) = &mut ck.processes[0].threads[0].regs {
        r[16] = rip;
    }
}

#[test]
fn diff_of_equal_images_is_silent_and_exits_0() {
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let a = save(dir.path(), "a.psnc", &example(arch, class));
        let b = save(dir.path(), "b.psnc", &example(arch, class));
        let r = imgtool(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "");
    }
}

#[test]
fn diff_finds_a_changed_register() {
    let dir = tmp();
    let a = save(
        dir.path(),
        "a.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let b = save(
        dir.path(),
        "b.psnc",
        &example_with(Arch::X86_64, LayoutClass::Bits64, |ck, _| {
            set_rip(ck, 0x40_1005)
        }),
    );
    let r = imgtool(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "processes[0].threads[0].regs.rip: 0x401000 -> 0x401005\n"
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(r.code, 1);
    let v = json(&r);
    assert_eq!(v["fields"][0]["path"], "processes[0].threads[0].regs.rip");
    assert_eq!(v["memory"].as_array().map(Vec::len), Some(0));
}

#[test]
fn diff_finds_a_changed_page_and_pages_stored_on_one_side() {
    let dir = tmp();
    let a = save(
        dir.path(),
        "a.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let b = example_with(Arch::X86_64, LayoutClass::Bits64, |_, runs| {
        let heap = runs
            .iter_mut()
            .find(|r| r.0 == 0x40_5000)
            .expect("heap run");
        heap.1[0x10] ^= 0xff;
        runs.retain(|r| r.0 != 0x7ffc_0000_0000);
    });
    let b = save(dir.path(), "b.psnc", &b);
    let r = imgtool(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let old = page_pattern(0x40_5000, 1)[0x10];
    for want in [
        "memory of processes[0] (pid 42): 1 page with other bytes (1 byte), 1 page only in A, 0 pages only in B".to_string(),
        format!("0x405000-0x406000 (1 page): 1 byte differs, first at 0x405010: {old:#04x} -> {:#04x}", old ^ 0xff),
        "0x7ffc00000000-0x7ffc00001000 (1 page): stored only in A".to_string(),
    ] {
        assert!(r.stdout.contains(&want), "want {want:?}:\n{}", r.stdout);
    }
    assert!(
        !r.stdout.contains("regs"),
        "only memory differs:\n{}",
        r.stdout
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ]);
    let m = &json(&r)["memory"][0];
    assert_eq!(
        (
            m["pages_differ"].as_u64(),
            m["bytes_differ"].as_u64(),
            m["pages_only_a"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // --ignore=memory leaves the pages out.
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--ignore=memory".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn diff_ignore_makes_two_captures_of_the_same_process_equal() {
    let dir = tmp();
    let a = save(
        dir.path(),
        "a.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let later = |ck: &mut psnc_format::model::Checkpoint| {
        ck.identity.created_ns += 3_600_000_000_000;
        ck.identity.tool_version = "0.2.0".into();
        ck.identity.host.kernel_release = "6.19.0".into();
        ck.identity.capture_cmdline = vec!["psnc-capture".into(), "42".into()];
    };
    let b = save(
        dir.path(),
        "b.psnc",
        &example_with(Arch::X86_64, LayoutClass::Bits64, |ck, _| later(ck)),
    );
    let r = imgtool(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("identity.created_ns: 1767225600000000000 (2026-01-01T00:00:00Z) -> 1767229200000000000 (2026-01-01T01:00:00Z)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("identity.host.kernel_release"),
        "{}",
        r.stdout
    );
    let r = imgtool(&[
        "diff".as_ref(),
        "--ignore".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    // Extra rules: a field name anywhere, and a path with [*].
    let c = save(
        dir.path(),
        "c.psnc",
        &example_with(Arch::X86_64, LayoutClass::Bits64, |ck, _| {
            later(ck);
            ck.processes[0].ppid = 4242;
            set_rip(ck, 0x40_2000);
        }),
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        c.as_os_str(),
        "--ignore=identity,ppid".as_ref(),
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "processes[0].threads[0].regs.rip: 0x401000 -> 0x402000\n"
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        c.as_os_str(),
        "--ignore=identity,ppid".as_ref(),
        "--ignore=processes[*].threads[*].regs.rip".as_ref(),
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

#[test]
fn diff_compares_contents_across_layout_classes() {
    let dir = tmp();
    let a = save(
        dir.path(),
        "a.psnc",
        &example(Arch::I386, LayoutClass::Bits32),
    );
    let b = save(
        dir.path(),
        "b.psnc",
        &example(Arch::I386, LayoutClass::Bits64),
    );
    let r = imgtool(&["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(
        r.stdout,
        "# layout classes differ (32-bit vs 64-bit); the contents are compared\n"
    );
}

#[test]
fn diff_errors_exit_2() {
    let dir = tmp();
    let a = save(
        dir.path(),
        "a.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        dir.path().join("missing").as_os_str(),
    ]);
    assert_eq!(r.code, 66);
    let r = imgtool(&["diff", "-", "-"]);
    assert_eq!(r.code, 64);
    assert!(
        r.stderr.contains("only one image can come from stdin"),
        "{}",
        r.stderr
    );
    let r = imgtool(&[
        "diff".as_ref(),
        a.as_os_str(),
        a.as_os_str(),
        "--ignore=processes[".as_ref(),
    ]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("unclosed ["), "{}", r.stderr);
}

fn convert(input: &std::path::Path, to: &str, out: &std::path::Path) -> Run {
    imgtool(&[
        "convert".as_ref(),
        input.as_os_str(),
        "--to".as_ref(),
        to.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
}

#[test]
fn convert_32_to_64_and_back_gives_the_same_bytes() {
    let dir = tmp();
    let original = example(Arch::I386, LayoutClass::Bits32);
    let orig = save(dir.path(), "example-32.psnc", &original);
    let wide = dir.path().join("wide.psnc");
    let back = dir.path().join("back.psnc");
    let r = convert(&orig, "64", &wide);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("32-bit -> 64-bit"), "{}", r.stderr);
    let w = Image::open(&wide).expect("open converted");
    assert_eq!(w.class(), LayoutClass::Bits64);
    assert_eq!(imgtool(&["verify".as_ref(), wide.as_os_str()]).code, 0);
    assert_eq!(
        imgtool(&["diff".as_ref(), orig.as_os_str(), wide.as_os_str()]).code,
        0
    );
    // The 64-bit conversion is what the writer makes of the same model in that class.
    assert_eq!(
        std::fs::read(&wide).expect("read"),
        example(Arch::I386, LayoutClass::Bits64)
    );

    let r = convert(&wide, "32", &back);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read(&back).expect("read") == original,
        "32 -> 64 -> 32 changed the bytes"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&back).expect("stat").permissions().mode() & 0o777,
        0o600
    );

    // Converting into the class an image already has rewrites it unchanged.
    let x64 = save(
        dir.path(),
        "x64.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let same = dir.path().join("same.psnc");
    assert_eq!(convert(&x64, "64", &same).code, 0);
    assert!(std::fs::read(&same).expect("read") == std::fs::read(&x64).expect("read"));
}

#[test]
fn convert_to_stdout_writes_the_same_stream() {
    let dir = tmp();
    let original = example(Arch::I386, LayoutClass::Bits32);
    let (r, out) = imgtool_stdin(&["convert", "-", "--to", "64", "-o", "-"], &original);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        out == example(Arch::I386, LayoutClass::Bits64),
        "stdout is not the converted image"
    );
    let p = save(dir.path(), "from-stdout.psnc", &out);
    assert_eq!(imgtool(&["verify".as_ref(), p.as_os_str()]).code, 0);
}

#[test]
fn convert_of_x86_64_to_32_is_refused_naming_the_field_and_writes_nothing() {
    let dir = tmp();
    let x64 = save(
        dir.path(),
        "x64.psnc",
        &example(Arch::X86_64, LayoutClass::Bits64),
    );
    let out = dir.path().join("out.psnc");
    let r = convert(&x64, "32", &out);
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "process 42 mm.start_stack = 0x7ffc00000f00 does not fit in the 32-bit layout class"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("x64.psnc")],
        "the refusal left files behind"
    );
}

#[test]
fn convert_refuses_an_input_that_does_not_verify() {
    let dir = tmp();
    let mut bytes = example(Arch::I386, LayoutClass::Bits32);
    let img = Image::from_vec(bytes.clone()).expect("open");
    let pd = img
        .sections()
        .iter()
        .find(|e| e.kind == SectionKind::PageData.number())
        .expect("page data")
        .offset;
    bytes[pd as usize + 5] ^= 0x40;
    let bad = save(dir.path(), "bad.psnc", &bytes);
    let out = dir.path().join("out.psnc");
    let r = convert(&bad, "64", &out);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("refusing to convert an image that does not verify"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("section page-data, chunk 0"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
}

#[test]
fn help_explains_every_subcommand_and_the_exit_codes() {
    let r = imgtool(&["--help"]);
    assert_eq!(r.code, 0);
    for want in ["info", "dump", "verify", "diff", "convert", "Exit status:"] {
        assert!(r.stdout.contains(want), "--help lacks {want}");
    }
    // Each subcommand lists the statuses it can return; only diff answers "no" with 1.
    for (sub, codes) in [
        ("info", &[0, 64, 65, 66][..]),
        ("dump", &[0, 64, 65, 66]),
        ("verify", &[0, 64, 65, 66]),
        ("diff", &[0, 1, 64, 65, 66]),
        ("convert", &[0, 64, 65, 66, 69, 70, 73]),
    ] {
        let r = imgtool(&[sub, "--help"]);
        assert_eq!(r.code, 0, "{sub} --help");
        let block = r
            .stdout
            .split_once("Exit status:\n")
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("{sub} --help lacks the exit statuses"));
        let listed: Vec<u8> = block
            .lines()
            .map_while(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(listed, codes, "{sub} --help:\n{block}");
    }
}

#[test]
fn info_and_dump_show_unix_sockets() {
    use psnc_format::model::{Fd, FdKind, UnixSocket};
    let dir = tmp();
    for (arch, class, _) in BOTH {
        let bytes = example_with(arch, class, |ck, _| {
            let sock = |fd: i32, ino: u64, u: UnixSocket| Fd {
                fd,
                flags: 2,
                cloexec: false,
                pos: 0,
                kind: FdKind::Socket {
                    family: 1,
                    sock_type: 5,
                    ino,
                    unix: Some(Box::new(u)),
                },
            };
            ck.processes[0].fds.push(sock(
                20,
                1000,
                UnixSocket {
                    state: 10,
                    name: b"\0psnc".to_vec(),
                    backlog: 3,
                    ..UnixSocket::default()
                },
            ));
            ck.processes[0].fds.push(sock(
                21,
                1001,
                UnixSocket {
                    state: 7,
                    queued: Vec::new(),
                    ..UnixSocket::default()
                },
            ));
        });
        let img = save(dir.path(), "img.psnc", &bytes);
        let r = imgtool(&["info".as_ref(), img.as_os_str()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("unix sockets:"), "{}", r.stdout);
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("@psnc"))
            .unwrap_or_else(|| panic!("no socket line:\n{}", r.stdout));
        let cols: Vec<&str> = line.split_whitespace().filter(|c| *c != "|").collect();
        assert_eq!(
            cols,
            [
                "42",
                "20",
                "seqpacket",
                "listening",
                "(backlog",
                "3)",
                "@psnc",
                "0",
                "msgs,",
                "0",
                "bytes"
            ],
            "{line}"
        );
        let r = imgtool(&[
            "dump".as_ref(),
            img.as_os_str(),
            "--section".as_ref(),
            "unix-sockets".as_ref(),
            "--json".as_ref(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["sections"][0]["kind"], 19);
        let u = &v["unix-sockets"][0];
        assert_eq!(
            (&u["pid"], &u["fd"], &u["type"], &u["name"], &u["backlog"]),
            (
                &42.into(),
                &20.into(),
                &"seqpacket".into(),
                &"@psnc".into(),
                &3.into()
            )
        );
    }
}

/// `dump --help` names every section kind once: the list is made from the format crate.
#[test]
fn dump_help_lists_every_section_once() {
    let r = imgtool(&[std::ffi::OsStr::new("dump"), std::ffi::OsStr::new("--help")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Section names:"))
        .unwrap_or_else(|| panic!("no section list:\n{}", r.stdout));
    for k in psnc_format::SectionKind::ALL {
        let n = line
            .trim_start_matches("Section names:")
            .trim_end_matches('.')
            .split(", ")
            .filter(|w| w.trim() == k.name())
            .count();
        assert_eq!(n, 1, "{} in {line:?}", k.name());
    }
}
