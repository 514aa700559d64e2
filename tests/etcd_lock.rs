//! The etcd lock against a real etcd (Debian's `etcd-server`: /usr/bin/etcd, or the
//! binary named by $ETCD). Each test runs its own single-member cluster on free
//! ports in a temporary directory; without the binary the tests skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchboard::replication::lock::{EtcdLock, Holder};
use tokio::time::{Instant, timeout};

const TTL: Duration = Duration::from_secs(2);

struct Etcd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it serves; `None` (after saying why) when the
    /// binary is not installed.
    fn start() -> Option<Etcd> {
        let bin = std::env::var("ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
        if !std::path::Path::new(&bin).exists() {
            eprintln!("SKIPPED: {bin} not found (apt-get install etcd-server, or set $ETCD)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, peer) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let etcd = Etcd {
            child,
            port,
            _dir: dir,
        };
        let started = std::time::Instant::now();
        while post(port, "/v3/kv/range", r#"{"key":"AA=="}"#).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not start; log: {}",
                std::fs::read_to_string(etcd._dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(etcd)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lock(&self) -> EtcdLock {
        EtcdLock::new(vec![self.url()], "test".into(), TTL)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// A unary gateway call, independent of the code under test. HTTP/1.0 so that the
/// answer is not chunked and ends with the connection.
fn post(port: u16, path: &str, body: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| serde_json::from_str(body).ok())?
}

fn holder(epoch: u64, node: &str) -> Holder {
    Holder {
        epoch,
        node: node.into(),
        in_sync: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_waits_then_takes_over_on_release() {
    let Some(etcd) = Etcd::start() else { return };
    // A dead endpoint first: calls must go on to the next one.
    let a = EtcdLock::new(
        vec![format!("http://127.0.0.1:{}", free_port()), etcd.url()],
        "test".into(),
        TTL,
    );
    assert_eq!(a.acquire().await.expect("first acquire"), Holder::default());
    assert!(a.revision() > 0);
    a.write(&holder(1, "a")).await.expect("write while holding");

    let b = etcd.lock();
    let mut standby = tokio::spawn(async move {
        let previous = b.acquire().await;
        (b, previous)
    });
    // Longer than a TTL: the holder's renewals keep the key.
    assert!(
        timeout(TTL + Duration::from_secs(1), &mut standby)
            .await
            .is_err(),
        "acquired while held"
    );
    a.write(&holder(1, "a-updated"))
        .await
        .expect("still holding");

    let released = Instant::now();
    a.release().await;
    let (b, previous) = timeout(Duration::from_secs(2), standby)
        .await
        .expect("standby took over soon after release")
        .expect("task");
    assert!(released.elapsed() < Duration::from_secs(1));
    assert_eq!(previous.expect("acquire"), holder(1, "a-updated"));
    assert!(b.revision() > a.revision(), "fencing token grows");

    let err = a.write(&holder(9, "a")).await.expect_err("released");
    assert!(err.to_string().contains("does not hold"), "{err}");
    b.write(&holder(2, "b")).await.expect("new holder writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_when_holder_stops_renewing() {
    let Some(etcd) = Etcd::start() else { return };
    let a = etcd.lock();
    a.acquire().await.expect("acquire");
    a.write(&holder(1, "a")).await.expect("write");

    let b = etcd.lock();
    let mut standby = tokio::spawn(async move {
        let previous = b.acquire().await;
        (b, previous)
    });
    assert!(
        timeout(Duration::from_millis(800), &mut standby)
            .await
            .is_err()
    );

    // A crash: no release, no more renewals.
    let a_revision = a.revision();
    let crashed = Instant::now();
    drop(a);
    let (b, previous) = timeout(TTL + Duration::from_secs(3), standby)
        .await
        .expect("standby took over after the lease expired")
        .expect("task");
    let took = crashed.elapsed();
    eprintln!("standby took over {took:?} after the holder stopped renewing");
    assert!(took < TTL + Duration::from_millis(1500), "took {took:?}");
    assert_eq!(previous.expect("acquire"), holder(1, "a"));
    assert!(b.revision() > a_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_holder_is_told_and_cannot_write() {
    let Some(etcd) = Etcd::start() else { return };
    let a = etcd.lock();
    a.acquire().await.expect("acquire");
    a.write(&holder(1, "a")).await.expect("write");

    // Someone revokes the holder's lease behind its back (as etcd does when it
    // expires): the renewal sees it and `lost()` fires.
    let leader = post(etcd.port, "/v3/kv/range", r#"{"key":"dGVzdC9sZWFkZXI="}"#)
        .expect("range the leader key");
    let lease = leader["kvs"][0]["lease"]
        .as_str()
        .expect("leader key has a lease");
    post(
        etcd.port,
        "/v3/lease/revoke",
        &format!(r#"{{"ID":"{lease}"}}"#),
    )
    .expect("revoke");
    timeout(TTL, a.lost()).await.expect("lost() fired");

    let b = etcd.lock();
    let previous = timeout(Duration::from_secs(2), b.acquire())
        .await
        .expect("key free")
        .expect("acquire");
    assert_eq!(previous, holder(1, "a"));

    let err = a.write(&holder(2, "a")).await.expect_err("deposed");
    assert!(err.to_string().contains("no longer hold"), "{err}");
    assert!(b.revision() > a.revision());
    b.write(&holder(2, "b")).await.expect("new holder writes");

    // The deposed node campaigns again, as a standby now.
    b.release().await;
    let previous = timeout(Duration::from_secs(2), a.acquire())
        .await
        .expect("key free")
        .expect("acquire again after a loss");
    assert_eq!(previous, holder(2, "b"));
    assert!(a.revision() > b.revision());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_fences_itself_when_etcd_is_gone() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let a = etcd.lock();
    a.acquire().await.expect("acquire");
    let stopped = Instant::now();
    etcd.stop();
    timeout(TTL + Duration::from_secs(1), a.lost())
        .await
        .expect("lost() fired");
    eprintln!("lost() fired {:?} after etcd stopped", stopped.elapsed());
    // Before etcd could let the lease go, i.e. within the TTL.
    assert!(stopped.elapsed() < TTL, "took {:?}", stopped.elapsed());
    let err = a.write(&holder(1, "a")).await.expect_err("etcd is down");
    assert!(err.to_string().contains("no endpoint answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_evicts_only_a_holder_whose_standby_was_in_sync() {
    let Some(etcd) = Etcd::start() else { return };
    let a = etcd.lock();
    a.acquire().await.expect("acquire");
    // The holder went on alone: only it has everything it confirmed, so its lease
    // must outlive any standby's suspicion.
    a.write(&Holder {
        epoch: 1,
        node: "a".into(),
        in_sync: false,
    })
    .await
    .expect("write");
    let b = etcd.lock();
    assert!(
        !b.evict("b").await.expect("evict"),
        "out-of-sync holder kept"
    );
    assert!(!a.evict("a").await.expect("evict"), "never oneself");
    a.write(&holder(1, "a")).await.expect("holder still holds");

    // In sync: the standby may cut the wait for the lease short.
    assert!(b.evict("b").await.expect("evict"), "in-sync holder evicted");
    timeout(TTL, a.lost())
        .await
        .expect("the holder learns it lost");
    let previous = timeout(Duration::from_secs(2), b.acquire())
        .await
        .expect("key free")
        .expect("acquire");
    assert_eq!(previous, holder(1, "a"));
    let err = a.write(&holder(1, "a")).await.expect_err("evicted");
    assert!(err.to_string().contains("no longer hold"), "{err}");
}
