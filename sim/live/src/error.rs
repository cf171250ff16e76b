//! What can go wrong with a real swarm: the harness's, the client's and the gather's errors in
//! one type, so that the connection and the harness share it without importing each other.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("no real swarm on this machine: {0}")]
    Unavailable(String),
    #[error("{lock} stayed locked for {waited:?} (another swarm runs on this machine; see `fuser {lock}`)")]
    LockTimeout { lock: &'static str, waited: Duration },
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

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        move |source| HarnessError::Io { what: what.into(), source }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
