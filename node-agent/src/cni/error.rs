//! The plugin's error type and its mapping to the CNI spec's error codes.

use std::{error::Error as _, io};

/// Everything the plugin can fail with. [`CniError::code`] maps each variant
/// to a code of the CNI spec (0-99 well-known, 100+ plugin-specific).
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// Code 1: the config's `cniVersion` is not one this plugin speaks, or the
    /// verb does not exist in that version.
    #[error("incompatible CNI version: {reason}")]
    IncompatibleVersion {
        /// What is incompatible.
        reason: String,
    },
    /// Code 2: a field this plugin does not support.
    #[error("unsupported field {field}: {reason}")]
    UnsupportedField {
        /// The field's name.
        field: String,
        /// Why it is not supported.
        reason: String,
    },
    /// Code 3: the container (its network namespace) does not exist.
    #[error("container unknown: {reason}")]
    ContainerUnknown {
        /// What was not found.
        reason: String,
    },
    /// Code 4: a `CNI_*` environment variable is missing or malformed.
    #[error("invalid environment variable {name}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Code 5: an I/O operation on the plugin's own files failed.
    #[error("I/O failure: {context}")]
    Io {
        /// What the plugin was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Code 6: stdin (or a state file) is not the JSON it should be.
    #[error("failed to decode {what}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Code 7: the network configuration is well-formed JSON but invalid.
    #[error("invalid network config: {reason}")]
    InvalidConfig {
        /// What is invalid.
        reason: String,
    },
    /// Code 11: a transient condition; the runtime should retry.
    #[error("try again later: {reason}")]
    TryAgainLater {
        /// What is transient.
        reason: String,
    },
    /// Code 50 (STATUS): the plugin cannot service ADD requests.
    #[error("plugin not available: {reason}")]
    NotAvailable {
        /// Why not.
        reason: String,
    },
    /// Code 100: the interface (or its host peer) already exists.
    #[error("already exists: {what}")]
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// Code 101: no free address is left in the pod CIDR.
    #[error("no free address left in {cidr}")]
    PoolExhausted {
        /// The exhausted pod CIDR.
        cidr: String,
    },
    /// Code 102: configuring links, addresses or routes failed.
    #[error("{operation} failed: {message}")]
    Netlink {
        /// The operation (an `ip` command line or a step name).
        operation: String,
        /// The kernel's (or iproute2's) complaint.
        message: String,
    },
    /// Code 103: CHECK found the attachment differs from `prevResult`.
    #[error("check failed: {reason}")]
    CheckFailed {
        /// The first difference found.
        reason: String,
    },
}

impl CniError {
    /// The CNI spec error code for this error.
    #[must_use]
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } => 1,
            Self::UnsupportedField { .. } => 2,
            Self::ContainerUnknown { .. } => 3,
            Self::InvalidEnv { .. } => 4,
            Self::Io { .. } => 5,
            Self::Decode { .. } => 6,
            Self::InvalidConfig { .. } => 7,
            Self::TryAgainLater { .. } => 11,
            Self::NotAvailable { .. } => 50,
            Self::AlreadyExists { .. } => 100,
            Self::PoolExhausted { .. } => 101,
            Self::Netlink { .. } => 102,
            Self::CheckFailed { .. } => 103,
        }
    }

    /// The error's cause chain, for the spec's `details` field.
    #[must_use]
    pub fn details(&self) -> String {
        let mut out = String::new();
        let mut cause = self.source();
        while let Some(err) = cause {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }

    /// Shorthand for [`CniError::Io`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for [`CniError::InvalidConfig`].
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            reason: reason.into(),
        }
    }
}
