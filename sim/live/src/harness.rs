//! A real swarm for tests and tools: a dockerd this process starts in a temporary directory, with
//! the busybox image and a one-manager swarm (or [`Swarm::start_cluster`]: several managers, each
//! dockerd in a network namespace of its own); stopped, crashed (kill -9 of dockerd and its
//! containerd) and restarted on demand; everything it made removed again when it is dropped, also
//! when a test fails or panics.
//!
//! Only one swarm can run on a machine (its ports, 2377 and 7946, are fixed), so a [`Swarm`] holds
//! an exclusive lock on [`LOCK_PATH`] for its whole life, as the team's shell recipe does: tests,
//! tools and people take turns. The harness never signals a process it did not start: it knows its
//! own by the temporary directory, which every one of them names on its command line (dockerd's
//! flags, containerd's `--config`, the shims' `-address`), and by descent from those.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::SwarmInitRequest;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt as _;

use crate::Endpoint;
use crate::connection::Connection;

/// The lock every dockerd of the project (and the team's shell recipe) runs under.
pub const LOCK_PATH: &str = "/tmp/swarmalloc-dockerd.lock";
/// The image the harness imports from `/bin/busybox` (busybox-static): `sh` and `sleep` only.
pub const IMAGE: &str = "local/busybox:1";
const BUSYBOX: &str = "/bin/busybox";

/// What the harness needs that may be missing on a machine, with the reason it is missing.
pub fn unavailable() -> Option<String> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Some("dockerd needs root and this process does not run as root".into());
    }
    for program in ["dockerd", "containerd"] {
        if which(program).is_none() {
            return Some(format!("`{program}` is not on PATH (Debian: apt-get install docker.io)"));
        }
    }
    if !Path::new(BUSYBOX).is_file() {
        return Some(format!("{BUSYBOX} is missing (Debian: apt-get install busybox-static)"));
    }
    None
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

pub use crate::error::{HarnessError, Result};

/// How the swarm is initialised.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    /// `docker swarm init --default-addr-pool` (empty: SwarmKit's 10.0.0.0/8).
    pub default_addr_pool: Vec<String>,
    /// `--default-addr-pool-mask-length` (None: 24).
    pub subnet_size: Option<u32>,
    /// How long to wait for another swarm on this machine to finish.
    pub lock_timeout: Duration,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions { default_addr_pool: Vec::new(), subnet_size: None, lock_timeout: Duration::from_secs(30 * 60) }
    }
}

/// One dockerd this process started: its directory (data root, exec root, socket, pid file,
/// log), the network namespace it runs in (a cluster's managers), the process, and its client.
struct Daemon {
    dir: PathBuf,
    netns: Option<String>,
    dockerd: Option<Child>,
    /// Made once dockerd listens, again after each start.
    conn: Connection,
}

impl Daemon {
    fn new(dir: PathBuf, netns: Option<String>) -> Result<Daemon> {
        fs::create_dir_all(&dir).map_err(HarnessError::io(format!("creating {}", dir.display())))?;
        let conn = Connection::new(Endpoint { socket: dir.join("docker.sock") })
            .map_err(HarnessError::io("starting a tokio runtime"))?;
        Ok(Daemon { dir, netns, dockerd: None, conn })
    }

    fn start(&mut self) -> Result<()> {
        let log_path = self.dir.join("dockerd.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(HarnessError::io(format!("opening {}", log_path.display())))?;
        let err_log = log.try_clone().map_err(HarnessError::io("duplicating the log file"))?;
        let dir = &self.dir;
        // An empty config file of its own, so that the host's /etc/docker/daemon.json (address
        // pools, storage, ...) cannot change what the tests see. (dockerd 20.10 refuses a raft
        // election tick there, `swarm-raft-election-tick`: a cluster elects at dockerd's pace.)
        let config_path = dir.join("daemon.json");
        fs::write(&config_path, "{}\n").map_err(HarnessError::io(format!("writing {}", config_path.display())))?;
        // Through `setpriv --pdeathsig KILL` when there is one (util-linux): dockerd is killed when
        // the thread that started it dies without cleaning up (a test binary killed by a CI time-out
        // or a second Ctrl-C), so it cannot outlive the lock and keep the swarm's ports. A
        // cluster's manager enters its network namespace with nsenter, which leaves the mount
        // namespace alone (`ip netns exec` mounts a fresh /sys, hiding the cgroup mounts dockerd
        // needs). setpriv and nsenter exec, so the child's pid is dockerd's.
        let mut program: Vec<String> = Vec::new();
        if let Some(setpriv) = which("setpriv") {
            program.extend([setpriv.display().to_string(), "--pdeathsig".into(), "KILL".into(), "--".into()]);
        }
        if let Some(netns) = &self.netns {
            program.extend(["nsenter".into(), format!("--net=/run/netns/{netns}")]);
        }
        program.push("dockerd".into());
        let child = Command::new(&program[0])
            .args(&program[1..])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
            .arg("--config-file")
            .arg(&config_path)
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(HarnessError::io("starting dockerd"))?;
        self.dockerd = Some(child);
        // A fresh client each time: the old one's pooled connections went to the previous process.
        self.conn.set_docker(None);
        let socket = self.dir.join("docker.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.dockerd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.dockerd = None;
                return Err(HarnessError::DockerdExited {
                    status: status.to_string(),
                    log: log_path.display().to_string(),
                    tail: tail(&log_path, 20),
                });
            }
            if socket.exists() {
                let docker = self.conn.endpoint().client().map_err(HarnessError::api("client"))?;
                if self.conn.block_on(docker.ping()).is_ok() {
                    let negotiated = self.conn.block_on(docker.negotiate_version());
                    self.conn.set_docker(Some(negotiated.map_err(HarnessError::api("negotiating the API version"))?));
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: "dockerd to answer on its socket".into(),
                    seconds: 60,
                    last: tail(&log_path, 5),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.dockerd.take() else { return Ok(()) };
        let containerd = containerd_pid(child.id());
        signal(child.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().map_err(HarnessError::io("waiting for dockerd"))?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                signal(child.id(), rustix::process::Signal::KILL);
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(pid) = containerd {
            wait_gone(pid, Duration::from_secs(10));
        }
        Ok(())
    }

    fn crash(&mut self) -> Result<()> {
        let Some(mut child) = self.dockerd.take() else { return Ok(()) };
        let containerd = containerd_pid(child.id());
        signal(child.id(), rustix::process::Signal::KILL);
        if let Some(pid) = containerd {
            signal(pid, rustix::process::Signal::KILL);
        }
        child.wait().map_err(HarnessError::io("waiting for the killed dockerd"))?;
        if let Some(pid) = containerd {
            wait_gone(pid, Duration::from_secs(10));
        }
        // dockerd takes the containerd its pid file names for a running one while that pid
        // exists (a zombie too) and then times out waiting for it: the file goes with it.
        let _ = fs::remove_file(self.dir.join("exec/containerd/containerd.pid"));
        Ok(())
    }

    /// Waits until this node is an active manager that can take requests (a leader is elected
    /// and the store answers).
    fn wait_for_manager(&self) -> Result<()> {
        self.conn.wait_for(
            "the swarm manager to take requests",
            Duration::from_secs(120),
            Duration::from_millis(100),
            async |docker: &Docker| {
                let info = docker.info().await.map_err(|e| e.to_string())?;
                let swarm = info.swarm.unwrap_or_default();
                if swarm.control_available != Some(true) {
                    return Ok(None);
                }
                // Answers only once a leader is elected and the store is readable.
                match docker.list_nodes(None::<bollard::query_parameters::ListNodesOptions>).await {
                    Ok(nodes) if !nodes.is_empty() => Ok(Some(())),
                    Ok(_) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
    }
}

/// The containerd that dockerd `pid` started (its child).
fn containerd_pid(dockerd: u32) -> Option<u32> {
    processes().into_iter().find(|p| p.ppid == dockerd && p.name == "containerd").map(|p| p.pid)
}

/// A swarm on dockerds this process started: one manager on the host's network, or a cluster
/// of managers, each in a network namespace of its own. See the module docs.
pub struct Swarm {
    dir: PathBuf,
    daemons: Vec<Daemon>,
    /// The network namespaces made for a cluster (deleted last), and its managers' addresses.
    net: Option<ClusterNet>,
    /// The managers [`Swarm::partition`] cut off.
    partitioned: std::collections::BTreeSet<usize>,
    /// Held (flock) until the swarm is dropped, after everything else is gone.
    _lock: File,
}

/// A cluster's network: a bridge in a hub namespace, one veth pair per manager.
struct ClusterNet {
    hub: String,
    /// Per manager: its namespace, the hub end of its veth pair, its address.
    managers: Vec<(String, String, String)>,
}

/// The subnet of a cluster's managers (the default pools, 10.0.0.0/8, stay the overlays').
const CLUSTER_NET: &str = "192.168.199";

/// Tells apart the network namespaces of the clusters one process makes.
static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Swarm {
    /// Takes the machine's swarm lock, starts dockerd, inits the swarm, imports [`IMAGE`].
    pub fn start(options: &SwarmOptions) -> Result<Swarm> {
        let mut swarm = Swarm::empty(options)?;
        let dir = swarm.dir.clone();
        swarm.daemons.push(Daemon::new(dir, None)?);
        swarm.daemons[0].start()?;
        swarm.init(options, "127.0.0.1")?;
        swarm.import_image()?;
        Ok(swarm)
    }

    /// A swarm of `managers` managers, each dockerd in its own network namespace, joined through
    /// veth pairs to a bridge in a hub namespace (made with `ip`, deleted on drop): real leader
    /// elections, and partitions by taking a manager's link down. Manager 0 inits the swarm.
    pub fn start_cluster(managers: usize, options: &SwarmOptions) -> Result<Swarm> {
        if let Some(reason) = cluster_unavailable() {
            return Err(HarnessError::Unavailable(reason));
        }
        let mut swarm = Swarm::empty(options)?;
        let prefix =
            format!("sa{}x{}", std::process::id(), CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let hub = format!("{prefix}hub");
        swarm.net = Some(ClusterNet { hub: hub.clone(), managers: Vec::new() });
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=managers {
            let (netns, inner, outer) = (format!("{prefix}m{i}"), format!("{prefix}m{i}"), format!("{prefix}h{i}"));
            let address = format!("{CLUSTER_NET}.{i}");
            ip(&["netns", "add", &netns])?;
            if let Some(net) = &mut swarm.net {
                net.managers.push((netns.clone(), outer.clone(), address.clone()));
            }
            ip(&["link", "add", &inner, "type", "veth", "peer", "name", &outer])?;
            ip(&["link", "set", &inner, "netns", &netns])?;
            ip(&["link", "set", &outer, "netns", &hub])?;
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"])?;
            ip(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", &inner])?;
            ip(&["-n", &netns, "link", "set", &inner, "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            let dir = swarm.dir.join(format!("m{i}"));
            swarm.daemons.push(Daemon::new(dir, Some(netns))?);
        }
        for daemon in &mut swarm.daemons {
            daemon.start()?;
        }
        let first = format!("{CLUSTER_NET}.1");
        swarm.init(options, &first)?;
        let token = swarm.daemons[0]
            .conn
            .block_on(swarm.daemons[0].conn.docker().inspect_swarm())
            .map_err(HarnessError::api("swarm inspect"))?
            .join_tokens
            .and_then(|t| t.manager)
            .unwrap_or_default();
        for i in 1..managers {
            let address = format!("{CLUSTER_NET}.{}", i + 1);
            let join = bollard::models::SwarmJoinRequest {
                listen_addr: Some(format!("{address}:2377")),
                advertise_addr: Some(address),
                remote_addrs: Some(vec![format!("{first}:2377")]),
                join_token: Some(token.clone()),
                ..Default::default()
            };
            let conn = &swarm.daemons[i].conn;
            conn.block_on(conn.docker().join_swarm(join)).map_err(HarnessError::api(format!("manager {i} joining")))?;
            swarm.daemons[i].wait_for_manager()?;
        }
        swarm.import_image()?;
        Ok(swarm)
    }

    /// The lock, the subreaper, the directory; no daemon yet. From here on, Drop cleans up
    /// whatever the next steps leave behind.
    fn empty(options: &SwarmOptions) -> Result<Swarm> {
        if let Some(reason) = unavailable() {
            return Err(HarnessError::Unavailable(reason));
        }
        let lock = take_lock(options.lock_timeout)?;
        // Orphans of a killed dockerd (its containerd, the shims) become this process's children
        // instead of init's: some inits (a VM's agent, a container's shell) never reap them, and
        // a restarted dockerd takes a zombie containerd named in its pid file for a live one and
        // times out waiting for it. (The argument is a flag: any non-zero value sets it.)
        rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(1))
            .map_err(|e| HarnessError::io("becoming the child subreaper")(e.into()))?;
        let dir = tempfile::Builder::new()
            .prefix("swarmalloc-dockerd-")
            .tempdir()
            .map_err(HarnessError::io("creating the swarm's temporary directory"))?
            .keep();
        Ok(Swarm { dir, daemons: Vec::new(), net: None, partitioned: Default::default(), _lock: lock })
    }

    /// `docker swarm init` on manager 0, advertising `address`.
    fn init(&self, options: &SwarmOptions, address: &str) -> Result<()> {
        let init = SwarmInitRequest {
            listen_addr: Some(format!("{address}:2377")),
            advertise_addr: Some(address.into()),
            default_addr_pool: (!options.default_addr_pool.is_empty()).then(|| options.default_addr_pool.clone()),
            subnet_size: options.subnet_size,
            ..Default::default()
        };
        let conn = &self.daemons[0].conn;
        conn.block_on(conn.docker().init_swarm(init)).map_err(HarnessError::api("swarm init"))?;
        self.daemons[0].wait_for_manager()
    }

    /// The swarm's temporary directory (dockerd's data and exec roots, its socket and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Manager 0's dockerd process id, while it runs.
    pub fn dockerd_pid(&self) -> Option<u32> {
        self.daemons[0].dockerd.as_ref().map(Child::id)
    }

    /// How many managers the swarm has.
    pub fn managers(&self) -> usize {
        self.daemons.len()
    }

    /// Manager `i`'s client (0 is the one that inited the swarm).
    pub fn manager(&self, i: usize) -> &Connection {
        &self.daemons[i].conn
    }

    /// A graceful stop of manager 0: SIGTERM, then wait for dockerd and its containerd to exit.
    pub fn stop(&mut self) -> Result<()> {
        self.stop_manager(0)
    }

    /// A manager crash: kill -9 of manager 0's dockerd and of the containerd it started.
    /// Running containers (their shims) survive, as they survive a dockerd crash.
    pub fn crash(&mut self) -> Result<()> {
        self.crash_manager(0)
    }

    /// Starts manager 0 again on the same data (after a stop or a crash) and waits until it
    /// answers as a manager; SwarmKit restores from its raft log.
    pub fn start_again(&mut self) -> Result<()> {
        self.start_manager(0)
    }

    /// [`Swarm::stop`], then [`Swarm::start_again`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// [`Swarm::crash`], then [`Swarm::start_again`].
    pub fn crash_restart(&mut self) -> Result<()> {
        self.crash()?;
        self.start_again()
    }

    pub fn stop_manager(&mut self, i: usize) -> Result<()> {
        self.daemons[i].stop()
    }

    pub fn crash_manager(&mut self, i: usize) -> Result<()> {
        self.daemons[i].crash()
    }

    /// Starts manager `i` again; in a cluster it answers once a leader is elected.
    pub fn start_manager(&mut self, i: usize) -> Result<()> {
        if self.daemons[i].dockerd.is_some() {
            return Ok(());
        }
        self.daemons[i].start()?;
        self.daemons[i].wait_for_manager()
    }

    /// Cuts manager `i` off the others (its link to the bridge goes down).
    pub fn partition(&mut self, i: usize) -> Result<()> {
        self.link(i, "down")?;
        self.partitioned.insert(i);
        Ok(())
    }

    /// Undoes [`Swarm::partition`].
    pub fn heal(&mut self, i: usize) -> Result<()> {
        self.link(i, "up")?;
        self.partitioned.remove(&i);
        Ok(())
    }

    fn link(&self, i: usize, state: &str) -> Result<()> {
        let Some(net) = &self.net else {
            return Err(HarnessError::Unavailable("a one-manager swarm cannot be partitioned".into()));
        };
        let (_, outer, _) = &net.managers[i];
        ip(&["-n", &net.hub, "link", "set", outer, state])
    }

    /// The manager that leads now, when every running manager that is not cut off answers and
    /// names the same one; None during an election, or while a manager still follows an old
    /// leader (a healed or restarted one may, until it hears of the new term).
    pub fn leader(&self) -> Option<usize> {
        let mut agreed = None;
        for i in 0..self.daemons.len() {
            if self.daemons[i].dockerd.is_none() || self.partitioned.contains(&i) {
                continue;
            }
            let seen = self.leader_seen_by(i)?;
            if agreed.is_some_and(|l| l != seen) {
                return None;
            }
            agreed = Some(seen);
        }
        agreed
    }

    /// The manager that manager `i` names as the leader, if it answers within 2 s. (A follower
    /// forwards the request to the leader it knows; while that one is cut off the request hangs
    /// until gRPC gives up, 20 s.)
    pub fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let conn = &self.daemons[i].conn;
        // (The timer is made inside the runtime: tokio's timers need its reactor.)
        let docker = conn.docker();
        let list = async {
            let nodes = docker.list_nodes(None::<bollard::query_parameters::ListNodesOptions>);
            real_tokio::time::timeout(Duration::from_secs(2), nodes).await
        };
        let Ok(Ok(nodes)) = conn.block_on(list) else { return None };
        let leader = nodes.iter().find(|n| n.manager_status.as_ref().and_then(|m| m.leader) == Some(true))?;
        let address = leader.manager_status.as_ref().and_then(|m| m.addr.clone()).unwrap_or_default();
        let host = address.split(':').next().unwrap_or_default();
        match &self.net {
            Some(net) => net.managers.iter().position(|(_, _, a)| a == host),
            None => Some(0),
        }
    }

    /// `docker import` of a tar holding `/bin/busybox` with `sh` and `sleep` links, on every
    /// manager (an image is local to its daemon).
    fn import_image(&self) -> Result<()> {
        let busybox = fs::read(BUSYBOX).map_err(HarnessError::io(format!("reading {BUSYBOX}")))?;
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(busybox.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, "bin/busybox", busybox.as_slice())
            .map_err(HarnessError::io("building the image tar"))?;
        for link in ["sh", "sleep"] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            tar.append_link(&mut header, format!("bin/{link}"), "busybox")
                .map_err(HarnessError::io("building the image tar"))?;
        }
        let bytes: hyper::body::Bytes = tar.into_inner().map_err(HarnessError::io("building the image tar"))?.into();
        let (repo, tag) = IMAGE.split_once(':').unwrap_or((IMAGE, "latest"));
        for daemon in &self.daemons {
            let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
            let conn = &daemon.conn;
            conn.block_on(async {
                let mut stream =
                    conn.docker().create_image(Some(options), Some(bollard::body_full(bytes.clone())), None);
                while let Some(item) = stream.next().await {
                    item.map_err(HarnessError::api(format!("importing {IMAGE}")))?;
                }
                Ok::<(), HarnessError>(())
            })?;
        }
        Ok(())
    }

    /// Kills every process that names this swarm's directory (dockerd, containerd, shims) and
    /// their descendants (containers), unmounts everything under the directory, removes it and
    /// the network namespaces.
    fn clean_up(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for daemon in &mut self.daemons {
            if let Err(e) = daemon.stop() {
                problems.push(e.to_string());
            }
        }
        let dir = self.dir.to_string_lossy().into_owned();
        for _ in 0..3 {
            let all = processes();
            let ours: Vec<u32> = all.iter().filter(|p| p.cmdline.contains(&dir)).map(|p| p.pid).collect();
            if ours.is_empty() {
                break;
            }
            // Descendants first (deepest last in the list, so reverse), then the named ones.
            let family = descendants(&all, &ours);
            for pid in family.iter().rev().chain(ours.iter()) {
                signal(*pid, rustix::process::Signal::KILL);
            }
            for pid in family.iter().chain(ours.iter()) {
                wait_gone(*pid, Duration::from_secs(5));
            }
        }
        for _ in 0..5 {
            let mounts = mounts_under(&self.dir);
            if mounts.is_empty() {
                break;
            }
            for mount in mounts {
                if let Err(e) = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH) {
                    problems.push(format!("unmounting {}: {e}", mount.display()));
                }
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            problems.push(format!("removing {}: {e}", self.dir.display()));
        }
        if let Some(net) = self.net.take() {
            // A namespace's veth ends go with it.
            for netns in net.managers.iter().map(|(n, _, _)| n).chain([&net.hub]) {
                if let Err(e) = ip(&["netns", "del", netns]) {
                    problems.push(e.to_string());
                }
            }
        }
        problems
    }
}

/// `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().map_err(HarnessError::io("running ip"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Io {
        what: format!("ip {}", args.join(" ")),
        source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    })
}

/// The swarm's client (manager 0's): `swarm.docker()`, `swarm.state()`, `swarm.settle(..)`,
/// `swarm.block_on(..)`.
impl std::ops::Deref for Swarm {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.daemons[0].conn
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let problems = self.clean_up();
        if !problems.is_empty() {
            // Straight to the process's stderr: a test's captured output is lost when it passes.
            let _ = writeln!(
                std::io::stderr(),
                "swarmalloc-live: cleaning up {}: {}",
                self.dir.display(),
                problems.join("; ")
            );
        }
    }
}

fn take_lock(timeout: Duration) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(HarnessError::io(format!("opening {LOCK_PATH}")))?;
    let deadline = Instant::now() + timeout;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(HarnessError::io(format!("locking {LOCK_PATH}"))(e)),
        }
        if Instant::now() > deadline {
            return Err(HarnessError::LockTimeout { lock: LOCK_PATH, waited: timeout });
        }
        if !told {
            let _ = writeln!(std::io::stderr(), "swarmalloc-live: waiting for {LOCK_PATH} (another swarm runs here)");
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Waits until `pid` is gone, reaping it when it is this process's child (as orphans are, see
/// `set_child_subreaper`); a zombie of another parent counts as gone.
fn wait_gone(pid: u32, timeout: Duration) {
    let me = std::process::id();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return };
        // "pid (name) state ppid ...". A zombie whose parent is not this process is its
        // parent's to reap; one that is (an orphan just handed over) is reaped next round.
        let mut fields = stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace()).into_iter().flatten();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        if state == Some("Z") && ppid != Some(me) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One process as /proc shows it.
#[derive(Clone, Debug)]
struct Process {
    pid: u32,
    ppid: u32,
    name: String,
    /// The arguments joined by spaces.
    cmdline: String,
}

fn processes() -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (name) state ppid ...": the name may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let Some(ppid) = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse().ok()) else { continue };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push(Process { pid, ppid, name, cmdline });
    }
    out
}

/// Every descendant of `roots` (not the roots), parents before children.
fn descendants(all: &[Process], roots: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while !frontier.is_empty() {
        let next: Vec<u32> = all
            .iter()
            .filter(|p| frontier.contains(&p.ppid) && !roots.contains(&p.pid) && !out.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        out.extend(&next);
        frontier = next;
    }
    out
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|path| path.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (octal).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `SWARMALLOC_REAL_SWARM=skip` skips the real-swarm tests on a machine that has Docker (they
/// hold the machine's one swarm slot for minutes); ignored, and a failure, under `CI=true`.
pub const SKIP_VARIABLE: &str = "SWARMALLOC_REAL_SWARM";

/// For tests that run a real swarm themselves (through `allocsim live`, say): true when they
/// can; otherwise false after saying loudly on stderr why the test is skipped. With `CI=true` a
/// missing Docker fails the test instead: CI installs it (`.ci/run`), so a skip there would hide
/// a broken setup.
pub fn real_swarm_or_skip(test: &str) -> bool {
    let asked = std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "skip");
    let reason = if asked {
        Some(format!("{SKIP_VARIABLE}=skip asks to skip the real-swarm tests"))
    } else {
        unavailable().map(|why| format!("no real swarm on this machine: {why}"))
    };
    let Some(reason) = reason else { return true };
    skip(test, &reason)
}

/// Says loudly on stderr that `test` is skipped and why, and returns false; under `CI=true`
/// fails instead.
fn skip(test: &str, reason: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI=true, and {reason}");
    }
    // Not through eprintln!: the test harness captures that and shows it only on failure.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {reason}. .ci/run installs what it needs; with CI=true this is a failure. ***"
    );
    false
}

/// For tests that need a real swarm: the swarm, or `None` after [`real_swarm_or_skip`] said why
/// the test is skipped.
pub fn swarm_for_test(test: &str, options: &SwarmOptions) -> Option<Swarm> {
    if !real_swarm_or_skip(test) {
        return None;
    }
    match Swarm::start(options) {
        Ok(swarm) => Some(swarm),
        Err(e) => panic!("{test}: starting a real swarm: {e}"),
    }
}

/// What a cluster needs besides a real swarm ([`unavailable`]): `ip` and `nsenter`.
pub fn cluster_unavailable() -> Option<String> {
    if let Some(reason) = unavailable() {
        return Some(reason);
    }
    ["ip", "nsenter"]
        .into_iter()
        .find(|p| which(p).is_none())
        .map(|p| format!("`{p}` is not on PATH (a cluster needs iproute2's `ip` and util-linux's `nsenter`)"))
}

/// For tests that need a cluster of `managers` managers: the swarm, or `None` after saying on
/// stderr why the test is skipped (under `CI=true`: a failure).
pub fn cluster_for_test(test: &str, managers: usize, options: &SwarmOptions) -> Option<Swarm> {
    if !real_swarm_or_skip(test) {
        return None;
    }
    if let Some(reason) = cluster_unavailable() {
        skip(test, &format!("no cluster on this machine: {reason}"));
        return None;
    }
    match Swarm::start_cluster(managers, options) {
        Ok(swarm) => Some(swarm),
        Err(e) => panic!("{test}: starting a cluster of {managers} managers: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/tmp/plain"), "/tmp/plain");
        assert_eq!(unescape_mountinfo("/tmp/end\\"), "/tmp/end\\");
    }

    #[test]
    fn descendants_come_parents_first_and_exclude_the_roots() {
        let p = |pid, ppid| Process { pid, ppid, name: String::new(), cmdline: String::new() };
        let all = [p(10, 1), p(11, 10), p(12, 11), p(13, 1), p(14, 13)];
        assert_eq!(descendants(&all, &[10]), vec![11, 12]);
        assert_eq!(descendants(&all, &[10, 11]), vec![12]);
        assert_eq!(descendants(&all, &[14]), Vec::<u32>::new());
    }
}
