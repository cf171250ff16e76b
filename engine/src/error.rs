//! Typed allocation errors. Retryable errors may succeed later without a spec change (something is
//! freed, a dependency gets allocated); permanent ones need the user to change the spec.

use thiserror::Error;

use crate::objects::ObjectId;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AllocError {
    /// A pool, port range or id range has nothing left.
    #[error("{what} exhausted")]
    Exhausted { what: String },
    /// The exact resource asked for is held by someone else.
    #[error("{what} is already in use by {holder}")]
    InUse { what: String, holder: String },
    /// Something this object needs is missing or not allocated yet.
    #[error("{needed} is not allocated yet")]
    DependencyNotAllocated { needed: String },
    /// The spec asks for something that can never be allocated.
    #[error("invalid spec: {what}")]
    InvalidSpec { what: String },
}

impl AllocError {
    /// Retryable errors can succeed later with the same spec.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, AllocError::InvalidSpec { .. })
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        AllocError::InvalidSpec { what: what.into() }
    }

    pub(crate) fn needs(needed: impl Into<String>) -> Self {
        AllocError::DependencyNotAllocated { needed: needed.into() }
    }

    pub(crate) fn exhausted(what: impl Into<String>) -> Self {
        AllocError::Exhausted { what: what.into() }
    }

    pub(crate) fn in_use(what: impl Into<String>, holder: impl Into<String>) -> Self {
        AllocError::InUse { what: what.into(), holder: holder.into() }
    }
}

/// An allocation error together with the object it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{object}: {error}")]
pub struct ObjectError {
    pub object: ObjectId,
    pub error: AllocError,
}
