//! The CRI v1 subset the sluice kubelet speaks (filled in with the node agent).
#![forbid(unsafe_code)]
