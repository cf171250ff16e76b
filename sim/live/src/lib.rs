//! swarmalloc-live: the project against a real Docker swarm (SwarmKit inside dockerd).
//!
//! Owns the connection to a Docker Engine API ([`Endpoint`], from `--host` or `DOCKER_HOST`);
//! `gather` (a swarm's state for `allocsim check`), `harness` (a throw-away swarm on a dockerd of
//! its own), `bench` (the real manager's allocation throughput), `connection` (a client and the waits), `ops` (user operations), `state` (the
//! gathered state as the tests and tools read it), `differential` (the real swarm against the
//! engine). See README.md.
//! Architecture invariant: nothing here runs inside the simulator; the simulated runtime and this
//! crate's real tokio runtime never meet (madsim's crates stay `tokio`, this one's is `real_tokio`).

use std::path::PathBuf;

pub mod bench;
pub mod connection;
pub mod differential;
pub mod error;
pub mod gather;
pub mod harness;
pub mod live;
pub mod ops;
pub mod state;

/// Where a Docker Engine API listens. Only unix sockets: the tools read a swarm on this
/// machine (a remote daemon is reached with `ssh -L` to a local socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub socket: PathBuf,
}

/// Docker's default socket when neither `--host` nor `DOCKER_HOST` names one.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{origin} is {value:?}: expected unix:///path/to/docker.sock (only unix sockets are supported)")]
    NotUnix { origin: &'static str, value: String },
}

impl Endpoint {
    /// The endpoint `host` names (as `--host` gives it), else `DOCKER_HOST`, else Docker's default.
    pub fn resolve(host: Option<&str>, docker_host: Option<&str>) -> Result<Endpoint, EndpointError> {
        let (origin, value) = match (host, docker_host.filter(|v| !v.is_empty())) {
            (Some(host), _) => ("--host", host),
            (None, Some(env)) => ("DOCKER_HOST", env),
            (None, None) => return Ok(Endpoint { socket: PathBuf::from(DEFAULT_SOCKET) }),
        };
        match value.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(Endpoint { socket: PathBuf::from(path) }),
            _ => Err(EndpointError::NotUnix { origin, value: value.to_string() }),
        }
    }

    /// The endpoint of this process's environment (`DOCKER_HOST`, else Docker's default).
    pub fn from_env() -> Result<Endpoint, EndpointError> {
        Endpoint::resolve(None, std::env::var("DOCKER_HOST").ok().as_deref())
    }

    /// A client for this endpoint at bollard's API version, without asking the daemon (which may
    /// not run yet); [`Endpoint::connect`] negotiates.
    pub fn client(&self) -> Result<bollard::Docker, bollard::errors::Error> {
        // Listing 5,000 tasks takes the manager most of a second; a restore can take longer.
        bollard::Docker::connect_with_unix(&self.socket.to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
    }

    /// A client for this endpoint, speaking the highest API version both sides know (dockerd
    /// 20.10 speaks 1.41, older than bollard's default). Call inside a real tokio runtime.
    pub async fn connect(&self, timeout_s: u64) -> Result<bollard::Docker, bollard::errors::Error> {
        let socket = self.socket.to_string_lossy();
        bollard::Docker::connect_with_unix(&socket, timeout_s, bollard::API_DEFAULT_VERSION)?.negotiate_version().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_flag_wins_over_docker_host_which_wins_over_the_default() {
        let flag = Endpoint::resolve(Some("unix:///a.sock"), Some("unix:///b.sock")).unwrap();
        assert_eq!(flag.socket, PathBuf::from("/a.sock"));
        let env = Endpoint::resolve(None, Some("unix:///b.sock")).unwrap();
        assert_eq!(env.socket, PathBuf::from("/b.sock"));
        assert_eq!(Endpoint::resolve(None, None).unwrap().socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(Endpoint::resolve(None, Some("")).unwrap().socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn tcp_and_malformed_hosts_are_refused_naming_where_they_came_from() {
        let err = Endpoint::resolve(None, Some("tcp://10.0.0.1:2375")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DOCKER_HOST is \"tcp://10.0.0.1:2375\": expected unix:///path/to/docker.sock (only unix sockets are supported)"
        );
        assert!(matches!(
            Endpoint::resolve(Some("unix://"), None),
            Err(EndpointError::NotUnix { origin: "--host", .. })
        ));
    }
}
