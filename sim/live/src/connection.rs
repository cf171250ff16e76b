//! A client of one dockerd: the Docker API through bollard on a tokio runtime of its own, plus
//! the swarm-level reads and waits the tests and tools share. A [`crate::harness::Swarm`] holds
//! one for the dockerd it started; [`Connection::open`] makes one for a daemon someone else runs
//! (`allocsim live --docker-host`).

use std::time::{Duration, Instant};

use bollard::Docker;

use crate::Endpoint;
use crate::error::{HarnessError, Result};
use crate::state::RealState;

pub struct Connection {
    endpoint: Endpoint,
    runtime: real_tokio::runtime::Runtime,
    /// None until the daemon listens (bollard refuses a socket that does not exist yet).
    docker: Option<Docker>,
}

impl Connection {
    /// A connection to a daemon that is not up yet (the harness's own).
    pub(crate) fn new(endpoint: Endpoint) -> std::io::Result<Connection> {
        let runtime = real_tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Connection { endpoint, runtime, docker: None })
    }

    /// A connection to a running daemon, at the highest API version both sides speak.
    pub fn open(endpoint: Endpoint) -> Result<Connection> {
        let mut conn = Connection::new(endpoint)
            .map_err(|source| HarnessError::Io { what: "starting a tokio runtime".into(), source })?;
        let docker = conn
            .block_on(conn.endpoint.connect(120))
            .map_err(HarnessError::api(format!("connecting to {}", conn.endpoint.socket.display())))?;
        conn.docker = Some(docker);
        Ok(conn)
    }

    pub(crate) fn set_docker(&mut self, docker: Option<Docker>) {
        self.docker = docker;
    }

    /// Where the daemon listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The daemon's client (a fresh one after each restart of a harness's dockerd).
    pub fn docker(&self) -> &Docker {
        self.docker.as_ref().expect("the harness starts dockerd before anything uses its client")
    }

    /// The API version the client negotiated (e.g. "1.41").
    pub fn api_version(&self) -> String {
        self.docker().client_version().to_string()
    }

    /// Runs a future (a bollard call) on the connection's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The swarm's state as the API shows it now.
    pub fn state(&self) -> std::result::Result<RealState, crate::gather::GatherError> {
        self.block_on(RealState::read(&self.endpoint, 120))
    }

    /// Waits until the swarm has done what was asked ([`RealState::unsettled`] says nothing) and
    /// two reads in a row show the same objects at the same versions; returns that state.
    /// Polls every quarter second, every second once there are a thousand tasks (listing 5,000
    /// tasks costs the manager most of a second).
    pub fn settle(&self, timeout: Duration) -> Result<RealState> {
        let deadline = Instant::now() + timeout;
        let mut previous: Option<Vec<(String, u64)>> = None;
        loop {
            let state = self.state()?;
            let unsettled = state.unsettled();
            let signature = state.signature();
            if unsettled.is_none() && previous.as_ref() == Some(&signature) {
                return Ok(state);
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: "the swarm to settle".into(),
                    seconds: timeout.as_secs(),
                    last: unsettled.unwrap_or_else(|| "objects still changing".into()),
                });
            }
            let interval = if state.tasks.len() >= 1000 { 1000 } else { 250 };
            previous = Some(signature);
            std::thread::sleep(Duration::from_millis(interval));
        }
    }

    /// Polls `probe` every `interval` until it returns `Ok(Some(_))`, for at most `timeout`.
    /// `Ok(None)` means "not yet" and `Err(text)` a transient failure; the last of either is
    /// quoted when the wait times out. Keep `interval` at a second or more when `probe` lists
    /// thousands of tasks.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        interval: Duration,
        mut probe: impl AsyncFnMut(&Docker) -> std::result::Result<Option<T>, String>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.block_on(probe(self.docker())) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => "not yet".to_string(),
                Err(e) => e,
            };
            if Instant::now() + interval > deadline {
                return Err(HarnessError::Timeout { what: what.into(), seconds: timeout.as_secs(), last });
            }
            std::thread::sleep(interval);
        }
    }
}
