//! `switchboard drill` end to end: a pair of real processes on loopback with a file
//! lock, load on AMQP, MQTT, STOMP and SQS, three SIGKILLs of the active; and, where
//! the machine allows it (root, iproute2, etcd), two network partitions of the
//! active with an etcd lock. The drill must exit 0 and its last line must say that
//! nothing confirmed was lost.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A debug build finishes in well under a minute; this only stops a hang.
const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn a_three_round_sigkill_drill_loses_nothing_confirmed() {
    drill(&["--rounds", "3", "--round-secs", "2"], 3);
}

#[test]
fn a_partition_drill_with_an_etcd_lock_loses_nothing_confirmed() {
    let etcd = std::env::var("ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip").arg("-V").output().is_ok();
    // Root in a container may still lack CAP_NET_ADMIN: try a namespace.
    let netns = root && ip && can_make_a_network_namespace();
    if !netns || !std::path::Path::new(&etcd).exists() {
        eprintln!(
            "SKIPPED: a partition drill needs root with network namespaces, iproute2 and {etcd} (root {root}, ip {ip}, netns {netns})"
        );
        return;
    }
    drill(
        &[
            "--rounds",
            "2",
            "--round-secs",
            "2",
            "--lock",
            "etcd",
            "--kill",
            "partition",
        ],
        2,
    );
}

fn can_make_a_network_namespace() -> bool {
    let name = format!("sbdprobe{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .is_ok_and(|o| o.status.success());
    if made {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
    }
    made
}

fn drill(args: &[&str], rounds: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("drill")
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchboard drill");
    // Read both pipes on threads so neither can fill up and stall the drill.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the drill did not finish within {LIMIT:?}; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "drill exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for proto in ["AMQP", "MQTT", "STOMP", "SQS"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(proto)),
            "no {proto} table:\n{stdout}"
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    let fields = parse_summary(last).unwrap_or_else(|| panic!("unexpected last line {last:?}"));
    assert_eq!(fields.rounds, rounds, "{last}");
    assert!(fields.confirmed > 0, "nothing was confirmed: {last}");
    assert_eq!(fields.lost, 0, "{stdout}");
    assert!(fields.p50 <= fields.max && fields.max > 0.0, "{last}");
}

struct Summary {
    rounds: u64,
    confirmed: u64,
    lost: u64,
    p50: f64,
    max: f64,
}

/// `drill rounds N: confirmed X, lost L, duplicated D, failover p50 S s max S s`.
fn parse_summary(line: &str) -> Option<Summary> {
    let rest = line.strip_prefix("drill rounds ")?;
    let (rounds, rest) = rest.split_once(": confirmed ")?;
    let (confirmed, rest) = rest.split_once(", lost ")?;
    let (lost, rest) = rest.split_once(", duplicated ")?;
    let (dup, rest) = rest.split_once(", failover p50 ")?;
    let (p50, rest) = rest.split_once(" s max ")?;
    let max = rest.strip_suffix(" s")?;
    dup.parse::<u64>().ok()?;
    Some(Summary {
        rounds: rounds.parse().ok()?,
        confirmed: confirmed.parse().ok()?,
        lost: lost.parse().ok()?,
        p50: p50.parse().ok()?,
        max: max.parse().ok()?,
    })
}
