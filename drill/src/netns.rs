//! The network a partition drill needs: each node in a network namespace of its
//! own, joined to a bridge in the drill's namespace by a veth pair; etcd and every
//! client stay on the bridge. Cutting a node is taking its veth end on the bridge
//! down: it then reaches nobody (not its peer, not etcd, not a client) and nobody
//! reaches it, as a node behind a failed switch port. Needs root and iproute2.

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "a partition drill needs root (network namespaces); run it as root, or use --kill sigkill|freeze"
    )]
    NotRoot,
    #[error("`ip {args}` failed: {why}")]
    Ip { args: String, why: String },
}

pub struct Netns {
    /// Prefix of every name made here (bridge, namespaces, veths): ≤ 9 characters,
    /// so interface names stay within Linux's 15.
    tag: String,
    /// The third octet of 10.213.X.0/24.
    subnet: u8,
}

fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Ip {
            args: args.join(" "),
            why: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Ip {
        args: args.join(" "),
        why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

impl Netns {
    /// Makes the bridge and one namespace per node (`a`, `b`).
    pub fn setup() -> Result<Netns, NetnsError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(NetnsError::NotRoot);
        }
        let id = std::process::id();
        let n = Netns {
            tag: format!("sbd{:05x}", id & 0xfffff),
            subnet: (id % 250) as u8 + 1,
        };
        let br = n.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", n.bridge_ip()), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for (i, node) in ["a", "b"].into_iter().enumerate() {
            let ns = n.ns(i);
            let (outer, inner) = (format!("{}{node}0", n.tag), format!("{}{node}1", n.tag));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &br, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", n.host(i)),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(n)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// The drill's own address on the bridge (etcd listens here).
    pub fn bridge_ip(&self) -> String {
        format!("10.213.{}.1", self.subnet)
    }

    /// Node `i`'s address.
    pub fn host(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.subnet, i + 2)
    }

    /// Node `i`'s namespace (`ip netns exec NS …` runs a process in it).
    pub fn ns(&self, i: usize) -> String {
        format!("{}{}", self.tag, ["a", "b"][i])
    }

    /// Cuts node `i` off from everyone (`up = false`) or reconnects it.
    pub fn link(&self, i: usize, up: bool) -> Result<(), NetnsError> {
        let outer = format!("{}{}0", self.tag, ["a", "b"][i]);
        ip(&["link", "set", &outer, if up { "up" } else { "down" }])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair in it; the bridge goes last.
        for i in 0..2 {
            let _ = ip(&["netns", "del", &self.ns(i)]);
            // Left in this namespace when setup failed half-way.
            let _ = ip(&["link", "del", &format!("{}{}0", self.tag, ["a", "b"][i])]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}
