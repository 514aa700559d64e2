//! Two `switchboard` processes on loopback forming an active/standby pair, as
//! tests/python/pairutil.py runs them: free ports, a data directory each under one
//! temporary directory, the chosen lock (a file there, a private etcd, or static
//! roles). The role a node announced last (`listening … role=…` on its stdout) is
//! watched; `ctl status` and `ctl promote` go through the same binary.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::LockKind;
use crate::netns::{Netns, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("cannot create {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("no free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("{what} within {secs} s{detail}")]
    Timeout {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("node {node} exited ({status}) while {what}; its log ends:\n{log}")]
    Exited {
        node: &'static str,
        status: String,
        what: String,
        log: String,
    },
    #[error("`switchboard ctl promote {node}` failed: {reason}")]
    Promote { node: String, reason: String },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// What a node said it is, last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Starting,
    Standby,
    Active,
    /// Its stdout closed: the process is gone (or going).
    Exited,
}

/// `switchboard ctl status` of one node.
#[derive(Debug, Default)]
pub struct Status {
    pub active: bool,
    pub epoch: u64,
    pub in_sync: bool,
}

/// Client ports of one node, by protocol.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub amqp: u16,
    pub mqtt: u16,
    pub stomp: u16,
    pub http: u16,
    mqtt_ws: u16,
    stomp_ws: u16,
}

pub struct Node {
    pub name: &'static str,
    /// The address its listeners are reached at (127.0.0.1, or its namespace's).
    pub host: String,
    data_dir: PathBuf,
    pub ports: Ports,
    repl_port: u16,
    child: Option<Child>,
    role: watch::Receiver<Role>,
}

impl Node {
    pub fn repl(&self) -> String {
        format!("{}:{}", self.host, self.repl_port)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("stderr")
    }

    /// The last lines of its stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn pid(&self) -> Option<libc::pid_t> {
        self.child
            .as_ref()?
            .id()
            .and_then(|p| libc::pid_t::try_from(p).ok())
    }
}

pub struct Pair {
    bin: PathBuf,
    lock: LockKind,
    /// Removed on drop unless `--keep`.
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    etcd: Option<(Child, String)>,
    pub nodes: [Node; 2],
    /// Partition drills: each node in a network namespace of its own. Declared
    /// last so it is torn down after the processes in it are gone.
    net: Option<Netns>,
}

/// A free port a node keeps over its restarts. Drawn from below the kernel's
/// ephemeral range: a port handed out by a bind to port 0 can go, while its node
/// is down, to a client's outgoing connection or another port-0 listener, and the
/// restarted node then cannot listen. Never the same port twice in one process.
fn free_port() -> Result<u16, PairError> {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = if low > 11000 {
        (10000, low)
    } else {
        (1024, low)
    };
    let seed = std::collections::hash_map::RandomState::new();
    let mut last = None;
    for _ in 0..1000 {
        let mut h = seed.build_hasher();
        h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = from + (h.finish() % u64::from(to - from)) as u16;
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed.contains(&port) {
            continue;
        }
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => {
                handed.push(port);
                return Ok(port);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(PairError::Port(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free port below the ephemeral range",
        )
    })))
}

fn timeout(what: impl Into<String>, limit: Duration, detail: String) -> PairError {
    PairError::Timeout {
        what: what.into(),
        secs: limit.as_secs(),
        detail,
    }
}

impl Pair {
    /// Starts the pair: node a first (it becomes active), then node b (standby).
    /// `partition`: each node in a network namespace of its own (root only), so
    /// that [`Pair::link`] can cut one off.
    pub async fn start(bin: PathBuf, lock: LockKind, partition: bool) -> Result<Pair, PairError> {
        let net = if partition {
            Some(Netns::setup()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("switchboard-drill-")
            .tempdir()
            .map_err(|e| PairError::Dir(std::env::temp_dir(), e))?;
        let root_path = dir.path().to_path_buf();
        let node = |i: usize, name: &'static str| -> Result<Node, PairError> {
            Ok(Node {
                name,
                host: net.as_ref().map_or("127.0.0.1".into(), |n| n.host(i)),
                data_dir: root_path.join(name),
                ports: Ports {
                    amqp: free_port()?,
                    mqtt: free_port()?,
                    stomp: free_port()?,
                    http: free_port()?,
                    mqtt_ws: free_port()?,
                    stomp_ws: free_port()?,
                },
                repl_port: free_port()?,
                child: None,
                role: watch::channel(Role::Exited).1,
            })
        };
        let nodes = [node(0, "a")?, node(1, "b")?];
        let mut pair = Pair {
            bin,
            lock,
            root: Some(dir),
            root_path,
            etcd: None,
            nodes,
            net,
        };
        if lock == LockKind::Etcd {
            pair.start_etcd().await?;
        }
        pair.spawn(0, true)?;
        pair.wait_role(0, Role::Active, Duration::from_secs(30))
            .await?;
        pair.spawn(1, false)?;
        pair.wait_role(1, Role::Standby, Duration::from_secs(30))
            .await?;
        Ok(pair)
    }

    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// Keeps the temporary directory (data dirs, logs) after the drill.
    pub fn keep(&mut self) {
        if let Some(d) = self.root.take() {
            let _ = d.keep();
        }
    }

    async fn start_etcd(&mut self) -> Result<(), PairError> {
        let bin = std::env::var("ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
        let (client, peer) = (free_port()?, free_port()?);
        // In a partition drill etcd sits on the bridge, where both nodes reach it.
        let host = self
            .net
            .as_ref()
            .map_or("127.0.0.1".into(), |n| n.bridge_ip());
        let url = format!("http://{host}:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = self.root_path.join("etcd.log");
        let out = std::fs::File::create(&log).map_err(|e| PairError::Dir(log.clone(), e))?;
        let err = out
            .try_clone()
            .map_err(|e| PairError::Dir(log.clone(), e))?;
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(self.root_path.join("etcd"))
            .args(["--name", "default"])
            .args(["--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PairError::Spawn {
                what: bin.clone(),
                source,
            })?;
        self.etcd = Some((child, url));
        let limit = Duration::from_secs(20);
        let t0 = Instant::now();
        while tokio::net::TcpStream::connect((host.as_str(), client))
            .await
            .is_err()
        {
            if t0.elapsed() > limit {
                return Err(timeout("etcd did not listen", limit, String::new()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn lock_spec(&self, first_active: bool) -> String {
        match (self.lock, &self.etcd) {
            (LockKind::Static, _) if first_active => "static:active".into(),
            (LockKind::Static, _) => "static:standby".into(),
            (LockKind::Etcd, Some((_, url))) => format!("etcd:{url}"),
            _ => format!("file:{}", self.root_path.join("active.lock").display()),
        }
    }

    /// Starts node `i` on its ports and data directory. `first_active` matters for
    /// static locks only: a node restarted after a kill is `static:standby`.
    pub fn spawn(&mut self, i: usize, first_active: bool) -> Result<(), PairError> {
        let lock = self.lock_spec(first_active);
        let peer = self.nodes[1 - i].repl();
        let n = &mut self.nodes[i];
        std::fs::create_dir_all(&n.data_dir).map_err(|e| PairError::Dir(n.data_dir.clone(), e))?;
        let log_path = n.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| PairError::Dir(log_path, e))?;
        let p = n.ports;
        let mut cmd = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(i)]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        if self.net.is_some() {
            // Clients reach the nodes over the bridge, not loopback: guest must be
            // allowed from there.
            let cfg = self.root_path.join("partition.toml");
            std::fs::write(
                &cfg,
                "[[users]]\nname = \"guest\"\npassword = \"guest\"\ntags = [\"administrator\"]\nloopback_only = false\n",
            )
            .map_err(|e| PairError::Dir(cfg.clone(), e))?;
            cmd.arg("--config").arg(cfg);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(&n.data_dir)
            .args(["--bind", &n.host, "--admin-port", "0"])
            .args(["--amqp-port", &p.amqp.to_string()])
            .args(["--mqtt-port", &p.mqtt.to_string()])
            .args(["--mqtt-ws-port", &p.mqtt_ws.to_string()])
            .args(["--stomp-port", &p.stomp.to_string()])
            .args(["--stomp-ws-port", &p.stomp_ws.to_string()])
            .args(["--http-port", &p.http.to_string()])
            .args(["--replication-port", &n.repl_port.to_string()])
            .args(["--peer", &peer, "--lock", &lock])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            // An error anywhere in the drill must not leave brokers running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PairError::Spawn {
                what: self.bin.display().to_string(),
                source,
            })?;
        let (tx, rx) = watch::channel(Role::Starting);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.starts_with("listening") {
                        continue;
                    }
                    match line.rsplit_once("role=").map(|(_, r)| r.trim()) {
                        Some("active") => tx.send_replace(Role::Active),
                        Some("standby") => tx.send_replace(Role::Standby),
                        _ => continue,
                    };
                }
                tx.send_replace(Role::Exited);
            });
        }
        n.child = Some(child);
        n.role = rx;
        Ok(())
    }

    pub fn role(&self, i: usize) -> Role {
        *self.nodes[i].role.borrow()
    }

    /// Waits until node `i` announces `role`; how long that took.
    pub async fn wait_role(
        &mut self,
        i: usize,
        role: Role,
        limit: Duration,
    ) -> Result<Duration, PairError> {
        let t0 = Instant::now();
        let mut rx = self.nodes[i].role.clone();
        let what = format!("node {} did not become {role:?}", self.nodes[i].name);
        let r =
            tokio::time::timeout(limit, rx.wait_for(|r| *r == role || *r == Role::Exited)).await;
        match r {
            Ok(Ok(r)) if *r == role => Ok(t0.elapsed()),
            Ok(_) => {
                let status = self.reap(i).await;
                Err(PairError::Exited {
                    node: self.nodes[i].name,
                    status,
                    what,
                    log: self.nodes[i].log_tail(),
                })
            }
            Err(_) => Err(timeout(
                what,
                limit,
                format!("; its log ends:\n{}", self.nodes[i].log_tail()),
            )),
        }
    }

    /// The exit status of a node whose stdout closed.
    async fn reap(&mut self, i: usize) -> String {
        let Some(c) = self.nodes[i].child.as_mut() else {
            return "not running".into();
        };
        match tokio::time::timeout(Duration::from_secs(5), c.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            _ => "still running".into(),
        }
    }

    /// `switchboard ctl status` of node `i`; None if it does not answer.
    pub async fn status(&self, i: usize) -> Option<Status> {
        let out = Command::new(&self.bin)
            .args(["ctl", "status", &self.nodes[i].repl()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut s = Status::default();
        for (k, v) in text.split_whitespace().filter_map(|w| w.split_once('=')) {
            match k {
                "role" => s.active = v == "active",
                "epoch" => s.epoch = v.parse().ok()?,
                "in_sync" => s.in_sync = v == "true",
                _ => {}
            }
        }
        Some(s)
    }

    /// Waits until active node `i` reports its standby in sync.
    pub async fn wait_in_sync(&self, i: usize, limit: Duration) -> Result<(), PairError> {
        let t0 = Instant::now();
        loop {
            let s = self.status(i).await;
            if s.as_ref().is_some_and(|s| s.active && s.in_sync) {
                return Ok(());
            }
            if t0.elapsed() > limit {
                return Err(timeout(
                    format!(
                        "node {} never reported its standby in sync",
                        self.nodes[i].name
                    ),
                    limit,
                    format!(" (last status {s:?})"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `switchboard ctl promote` on node `i` (static locks).
    pub async fn promote(&self, i: usize) -> Result<(), PairError> {
        let node = self.nodes[i].repl();
        let out = Command::new(&self.bin)
            .args(["ctl", "promote", &node])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| PairError::Promote {
                node: node.clone(),
                reason: e.to_string(),
            })?;
        if out.status.success() {
            return Ok(());
        }
        Err(PairError::Promote {
            node,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Partition drills: cuts node `i` off from everyone, or reconnects it.
    pub fn link(&self, i: usize, up: bool) -> Result<(), PairError> {
        match &self.net {
            Some(net) => Ok(net.link(i, up)?),
            None => Ok(()),
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self, i: usize) {
        if let Some(c) = self.nodes[i].child.as_mut() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGSTOP (`freeze`) or SIGCONT (`thaw`) node `i`.
    pub fn signal(&self, i: usize, freeze: bool) {
        if let Some(pid) = self.nodes[i].pid() {
            // SAFETY: kill(2) on a child we started and have not reaped.
            unsafe {
                libc::kill(pid, if freeze { libc::SIGSTOP } else { libc::SIGCONT });
            }
        }
    }

    /// Waits for node `i` to exit by itself; its status, or None at the limit.
    pub async fn wait_exit(&mut self, i: usize, limit: Duration) -> Option<ExitStatus> {
        let c = self.nodes[i].child.as_mut()?;
        tokio::time::timeout(limit, c.wait()).await.ok()?.ok()
    }

    /// Stops both nodes (SIGTERM, then SIGKILL) and etcd.
    pub async fn shutdown(&mut self) {
        for i in 0..2 {
            self.signal(i, false);
            let Some(pid) = self.nodes[i].pid() else {
                continue;
            };
            // SAFETY: as in `signal`.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            if self.wait_exit(i, Duration::from_secs(10)).await.is_none() {
                self.kill(i).await;
            }
        }
        if let Some((mut c, _)) = self.etcd.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}
