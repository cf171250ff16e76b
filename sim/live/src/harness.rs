//! A real swarm for tests and tools: a dockerd this process starts in a temporary directory, with
//! the busybox image and a one-manager swarm; stopped, crashed (kill -9 of dockerd and its
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

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("no real swarm on this machine: {0}")]
    Unavailable(String),
    #[error("{LOCK_PATH} stayed locked for {0:?} (another swarm runs on this machine; see `fuser {LOCK_PATH}`)")]
    LockTimeout(Duration),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("dockerd exited ({status}) before it answered; the end of {log}:\n{tail}")]
    DockerdExited { status: String, log: String, tail: String },
    #[error("timed out after {seconds} s waiting for {what}; last seen: {last}")]
    Timeout { what: String, seconds: u64, last: String },
    #[error("{0}")]
    Gather(#[from] crate::gather::GatherError),
    #[error("Docker API, {what}: {source}")]
    Api { what: String, source: bollard::errors::Error },
}

impl HarnessError {
    pub fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> HarnessError {
        move |source| HarnessError::Api { what: what.into(), source }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        move |source| HarnessError::Io { what: what.into(), source }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

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

/// A one-manager swarm on a dockerd this process started. See the module docs.
pub struct Swarm {
    dir: PathBuf,
    dockerd: Option<Child>,
    /// The client of this dockerd (made once it listens, again after each start).
    conn: Connection,
    /// Held (flock) until the swarm is dropped, after everything else is gone.
    _lock: File,
}

impl Swarm {
    /// Takes the machine's swarm lock, starts dockerd, inits the swarm, imports [`IMAGE`].
    pub fn start(options: &SwarmOptions) -> Result<Swarm> {
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
        let conn = Connection::new(Endpoint { socket: dir.join("docker.sock") })
            .map_err(HarnessError::io("starting a tokio runtime"))?;
        // From here on, Drop cleans up whatever the next steps leave behind.
        let mut swarm = Swarm { dir, dockerd: None, conn, _lock: lock };
        swarm.start_dockerd()?;
        let init = SwarmInitRequest {
            listen_addr: Some("127.0.0.1:2377".into()),
            advertise_addr: Some("127.0.0.1".into()),
            default_addr_pool: (!options.default_addr_pool.is_empty()).then(|| options.default_addr_pool.clone()),
            subnet_size: options.subnet_size,
            ..Default::default()
        };
        swarm.block_on(swarm.docker().init_swarm(init)).map_err(HarnessError::api("swarm init"))?;
        swarm.wait_for_manager()?;
        swarm.import_image()?;
        Ok(swarm)
    }

    /// The swarm's temporary directory (dockerd's data and exec roots, its socket and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// dockerd's process id, while it runs.
    pub fn dockerd_pid(&self) -> Option<u32> {
        self.dockerd.as_ref().map(Child::id)
    }

    /// A graceful stop: SIGTERM, then wait for dockerd (and the containerd it started) to exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.dockerd.take() else { return Ok(()) };
        let containerd = self.containerd_pid(child.id());
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

    /// A manager crash: kill -9 of dockerd and of the containerd it started. Running containers
    /// (their shims) survive, as they survive a dockerd crash; the next start finds them.
    pub fn crash(&mut self) -> Result<()> {
        let Some(mut child) = self.dockerd.take() else { return Ok(()) };
        let containerd = self.containerd_pid(child.id());
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

    /// Starts dockerd again on the same data (after [`Swarm::stop`] or [`Swarm::crash`]) and
    /// waits until its manager answers; SwarmKit restores from its raft log.
    pub fn start_again(&mut self) -> Result<()> {
        if self.dockerd.is_some() {
            return Ok(());
        }
        self.start_dockerd()?;
        self.wait_for_manager()
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

    fn start_dockerd(&mut self) -> Result<()> {
        let log_path = self.dir.join("dockerd.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(HarnessError::io(format!("opening {}", log_path.display())))?;
        let err_log = log.try_clone().map_err(HarnessError::io("duplicating the log file"))?;
        let dir = &self.dir;
        // Through `setpriv --pdeathsig KILL` when there is one (util-linux): dockerd is killed when
        // the thread that started it dies without cleaning up (a test binary killed by a CI time-out
        // or a second Ctrl-C), so it cannot outlive the lock and keep the swarm's ports. setpriv
        // execs dockerd, so the child's pid is dockerd's.
        let mut command = match which("setpriv") {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--", "dockerd"]);
                command
            }
            None => Command::new("dockerd"),
        };
        let child = command
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
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
                let docker = self.endpoint().client().map_err(HarnessError::api("client"))?;
                if self.block_on(docker.ping()).is_ok() {
                    let negotiated = self.block_on(docker.negotiate_version());
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

    /// Waits until this node is an active manager that can take requests (a leader is elected
    /// and the store answers).
    fn wait_for_manager(&self) -> Result<()> {
        self.wait_for("the swarm manager to take requests", Duration::from_secs(120), Duration::from_millis(100), {
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
            }
        })
    }

    /// `docker import` of a tar holding `/bin/busybox` with `sh` and `sleep` links.
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
        let bytes = tar.into_inner().map_err(HarnessError::io("building the image tar"))?;
        let (repo, tag) = IMAGE.split_once(':').unwrap_or((IMAGE, "latest"));
        let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
        self.block_on(async {
            let mut stream = self.docker().create_image(Some(options), Some(bollard::body_full(bytes.into())), None);
            while let Some(item) = stream.next().await {
                item.map_err(HarnessError::api(format!("importing {IMAGE}")))?;
            }
            Ok(())
        })
    }

    /// The containerd that dockerd `pid` started (its child).
    fn containerd_pid(&self, dockerd: u32) -> Option<u32> {
        processes().into_iter().find(|p| p.ppid == dockerd && p.name == "containerd").map(|p| p.pid)
    }

    /// Kills every process that names this swarm's directory (dockerd, containerd, shims) and
    /// their descendants (containers), unmounts everything under the directory and removes it.
    fn clean_up(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.stop() {
            problems.push(e.to_string());
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
        problems
    }
}

/// The swarm's client: `swarm.docker()`, `swarm.state()`, `swarm.settle(..)`, `swarm.block_on(..)`.
impl std::ops::Deref for Swarm {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
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
            return Err(HarnessError::LockTimeout(timeout));
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
