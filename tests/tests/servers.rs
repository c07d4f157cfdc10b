//! Servers nobody wrote for this project (issues 9 and 10). nginx (Debian's): a master and two
//! workers as a user starts them (`daemon on`: the master is an orphan of init), the listener
//! shared by all three, the master and workers joined by socketpairs, the accept mutex in shared
//! memory, the workers running as `nobody`. Captured whole with `--kill`, restored: the workers
//! serve the file again, the access log the restored workers hold gets the new lines, a
//! `nginx -s reload` makes the restored master start new workers that serve, and
//! `nginx -s quit` ends it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use psnc_tests::{alive, capture, children, restore, wait_for, RunOpts, WorkDir};

/// Kills the master and every worker seen, whatever the test's outcome.
struct Nginx {
    pids: Vec<u32>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        for p in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn get(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    c.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read the answer");
    out
}

fn nginx(dir: &Path, args: &[&str]) {
    psnc_tests::output_ok(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(args),
    );
}

fn log_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn nginx_master_and_workers_serve_after_restore() {
    if Command::new("nginx").arg("-v").output().is_err() {
        psnc_testkit::skip(
            "nginx",
            "nginx is not installed (scripts/test.sh installs it)",
        );
        return;
    }
    let dir = WorkDir::new("nginx");
    let d = dir.path();
    std::fs::create_dir(d.join("html")).expect("mkdir html");
    std::fs::write(d.join("html/index.html"), "served by psnc-restored nginx\n").expect("index");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let t = |n: &str| d.join(n).display().to_string();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "worker_processes 2;\npid {pid};\nerror_log {err};\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log {acc};\n client_body_temp_path {tmp}/body;\n\
              proxy_temp_path {tmp}/proxy;\n fastcgi_temp_path {tmp}/fastcgi;\n\
              uwsgi_temp_path {tmp}/uwsgi;\n scgi_temp_path {tmp}/scgi;\n\
              server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            pid = t("nginx.pid"),
            err = t("error.log"),
            acc = t("access.log"),
            tmp = d.display(),
            root = t("html"),
        ),
    )
    .expect("nginx.conf");
    nginx(d, &[]);
    let master: u32 = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
    .expect("nginx wrote no pid file");
    let mut guard = Nginx { pids: vec![master] };
    let workers = wait_for(Duration::from_secs(10), || {
        let c = children(master);
        (c.len() == 2).then_some(c)
    })
    .expect("nginx did not start 2 workers");
    guard.pids.extend(&workers);
    assert!(get(port).contains("served by psnc-restored nginx"));
    wait_for(Duration::from_secs(10), || {
        (log_lines(d) == 1).then_some(())
    })
    .expect("the first request is not in the access log");

    let image = dir.join("image");
    let r = capture(master, &image, &["--kill"]);
    r.assert_ok();
    assert!(
        r.stderr.contains("and 2 descendants"),
        "master and workers:\n{r}"
    );
    wait_for(Duration::from_secs(10), || {
        (!alive(master) && workers.iter().all(|w| !alive(*w))).then_some(())
    })
    .expect("nginx still runs after --kill");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still serves port {port} after the capture"
    );

    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, master);
    assert_eq!(children(master), workers, "the restored workers");
    for i in 0..6 {
        let answer = get(port);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("served by psnc-restored nginx"),
            "request {i} after restore:\n{answer}"
        );
    }
    wait_for(Duration::from_secs(10), || {
        (log_lines(d) == 7).then_some(())
    })
    .unwrap_or_else(|| panic!("access log: {} lines, not 7", log_lines(d)));

    nginx(d, &["-s", "reload"]);
    let fresh = wait_for(Duration::from_secs(20), || {
        let c = children(master);
        (c.len() == 2 && c.iter().all(|w| !workers.contains(w))).then_some(c)
    })
    .unwrap_or_else(|| panic!("no new workers after reload: {:?}", children(master)));
    guard.pids.extend(&fresh);
    assert!(
        get(port).contains("served by psnc-restored nginx"),
        "after reload"
    );

    nginx(d, &["-s", "quit"]);
    wait_for(Duration::from_secs(20), || (!alive(master)).then_some(()))
        .expect("the restored nginx did not quit");
    drop(restored);
}

/// The newest installed PostgreSQL's server binaries (`/usr/lib/postgresql/N/bin`).
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// `setpriv` to the postgres user: PROGRAM ARGS as it.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "postgres",
        "--regid",
        "postgres",
        "--init-groups",
        "--",
    ])
    .arg(program)
    .args(args)
    .env("LC_ALL", "C")
    .stdin(std::process::Stdio::null());
    c
}

/// Stops the server (immediately) and kills whatever of it is left, whatever the test's outcome.
struct Postgres {
    bin: std::path::PathBuf,
    data: String,
    pids: Vec<u32>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data,
                "stop",
                "-m",
                "immediate",
                "-w",
                "-t",
                "10",
            ],
        )
        .output();
        for p in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// PostgreSQL (Debian's), started as the postgres user with `pg_ctl start` (the postmaster an
/// orphan of init, as a service manager leaves it), a table written over the unix socket. The
/// postmaster and its workers (checkpointer, background writer, WAL writer, autovacuum and
/// logical replication launchers) share a System V segment (its id in `postmaster.pid`), shared
/// anonymous memory, the postmaster-death pipe and the listeners (127.0.0.1 and a unix socket).
/// Captured whole with `--kill`; after restore a client reads the same rows over TCP and the
/// unix socket, writes more, and a CHECKPOINT runs; `pg_ctl stop` ends every process cleanly,
/// removing the segment by its id (so it had the same one), and the data directory starts again
/// with every row.
#[test]
fn postgresql_serves_its_data_after_restore() {
    let Some(bin) = postgres_bin() else {
        psnc_testkit::skip(
            "postgresql",
            "PostgreSQL is not installed (scripts/test.sh installs it)",
        );
        return;
    };
    if Command::new("psql").arg("--version").output().is_err() {
        psnc_testkit::skip(
            "postgresql",
            "psql is not installed (scripts/test.sh installs it)",
        );
        return;
    }
    let dir = WorkDir::new("postgresql");
    let d = dir.path();
    let (uid, gid) = (
        psnc_tests::output_ok(Command::new("id").args(["-u", "postgres"])),
        psnc_tests::output_ok(Command::new("id").args(["-g", "postgres"])),
    );
    let own = |p: &Path| {
        std::os::unix::fs::chown(
            p,
            Some(uid.trim().parse().expect("uid")),
            Some(gid.trim().parse().expect("gid")),
        )
        .expect("chown to postgres")
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    own(d);
    let data = d.join("data").display().to_string();
    let sock = d.display().to_string();
    let log = d.join("log").display().to_string();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    psnc_tests::output_ok(&mut as_postgres(
        &bin.join("initdb"),
        &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
    ));
    let mut pg = Postgres {
        bin: bin.clone(),
        data: data.clone(),
        pids: Vec::new(),
    };
    // No autovacuum worker coming and going while the tree is compared (the launcher stays).
    let options = format!(
        "-k {sock} -p {port} -c listen_addresses=127.0.0.1 -c huge_pages=off -c fsync=off \
         -c autovacuum_naptime=1h"
    );
    let start = || {
        psnc_tests::output_ok(&mut as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
            ],
        ))
    };
    start();
    let pid_file = || std::fs::read_to_string(d.join("data/postmaster.pid")).unwrap_or_default();
    let master: u32 = pid_file()
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    // Line 7 of postmaster.pid: the segment's key and id.
    let shmid: i32 = pid_file()
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no shmid in postmaster.pid:\n{}", pid_file()));
    pg.pids.push(master);
    let psql = |host: &str, sql: &str| {
        psnc_tests::output_ok(
            Command::new("psql")
                .args([
                    "-X", "-q", "-A", "-t", "-h", host, "-p", &port, "-U", "postgres", "-c",
                ])
                .arg(sql)
                .env("LC_ALL", "C"),
        )
        .trim()
        .to_string()
    };
    psql(
        &sock,
        "create table t(i int primary key, s text); \
         insert into t select g, md5(g::text) from generate_series(1, 5000) g;",
    );
    let sum = "select count(*), sum(i), md5(string_agg(s, ',' order by i)) from t";
    let before = psql(&sock, sum);
    // The background workers only: the backends of the clients above exit soon after them,
    // and a worker may come and go at start-up; the set must hold still for a second.
    let cmdline = |p: &u32| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
    let mut last: (Vec<u32>, std::time::Instant) = (Vec::new(), std::time::Instant::now());
    let workers = wait_for(Duration::from_secs(30), || {
        let c = children(master);
        let backend = |p: &u32| {
            let l = String::from_utf8_lossy(&cmdline(p)).to_string();
            l.contains("[local]") || l.contains("127.0.0.1")
        };
        if c != last.0 {
            last = (c.clone(), std::time::Instant::now());
        }
        (c.len() >= 4 && !c.iter().any(backend) && last.1.elapsed() > Duration::from_millis(1500))
            .then_some(c)
    })
    .unwrap_or_else(|| panic!("PostgreSQL started only {:?}", children(master)));
    pg.pids.extend(&workers);

    let image = dir.join("image");
    let r = capture(master, &image, &["--kill"]);
    r.assert_ok();
    assert!(
        r.stderr
            .contains(&format!("and {} descendants", workers.len())),
        "postmaster and its {} workers:\n{r}",
        workers.len()
    );
    wait_for(Duration::from_secs(10), || {
        (!alive(master) && workers.iter().all(|w| !alive(*w))).then_some(())
    })
    .expect("PostgreSQL still runs after --kill");
    assert!(
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port"))).is_err(),
        "something still serves port {port} after the capture"
    );

    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, master);
    assert_eq!(children(master), workers, "the restored workers");
    assert_eq!(
        psql("127.0.0.1", sum),
        before,
        "the rows over TCP after restore"
    );
    assert_eq!(
        psql(&sock, sum),
        before,
        "the rows over the unix socket after restore"
    );
    psql(
        "127.0.0.1",
        "insert into t select g, md5(g::text) from generate_series(5001, 6000) g; checkpoint;",
    );
    assert_eq!(psql(&sock, "select count(*), max(i) from t"), "6000|6000");

    psnc_tests::output_ok(&mut as_postgres(
        &bin.join("pg_ctl"),
        &["-D", &data, "stop", "-m", "fast", "-w", "-t", "30"],
    ));
    wait_for(Duration::from_secs(20), || {
        (!alive(master) && workers.iter().all(|w| !alive(*w))).then_some(())
    })
    .expect("the restored PostgreSQL did not stop");
    let server_log = std::fs::read_to_string(d.join("log")).unwrap_or_default();
    assert!(
        server_log
            .trim_end()
            .ends_with("database system is shut down"),
        "no clean shutdown in the server log:\n{server_log}"
    );
    assert!(
        psnc_ptrace::shm::stat(shmid).is_err(),
        "the segment {shmid} outlived the restored server's shutdown (it removes it by id)"
    );
    // A clean shutdown left a data directory that starts without recovery, with every row.
    start();
    assert_eq!(psql(&sock, "select count(*) from t"), "6000");
    drop(restored);
}
