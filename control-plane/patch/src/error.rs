//! The one error type of the crate.

/// Why a patch could not be applied.
///
/// Every variant is a client error: the API server answers `422 Unprocessable Entity` (or
/// `400 Bad Request` for a patch that is not even shaped like one) with the `Display` text as the
/// Status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The document or the patch is not a JSON object where one is required.
    #[error("the {what} must be a JSON object")]
    NotAnObject {
        /// `"document"` or `"patch"`.
        what: &'static str,
    },
    /// A JSON patch (RFC 6902) must be an array of operations.
    #[error("a JSON patch must be a JSON array of operations")]
    JsonPatchNotArray,
    /// A JSON patch operation is malformed (missing member, bad pointer, unknown op, ...).
    #[error("invalid JSON patch operation {index}: {reason}")]
    InvalidOperation {
        /// Position of the operation in the patch array.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON patch operation refers to a location that does not exist.
    #[error("JSON patch operation {index} ({op}): path {path:?} does not exist in the document")]
    PathNotFound {
        /// Position of the operation in the patch array.
        index: usize,
        /// The operation name.
        op: String,
        /// The JSON pointer that could not be resolved.
        path: String,
    },
    /// A JSON patch `test` operation found a different value.
    #[error("JSON patch operation {index} (test): the value at {path:?} does not match")]
    TestFailed {
        /// Position of the operation in the patch array.
        index: usize,
        /// The JSON pointer that was tested.
        path: String,
    },
    /// A strategic merge patch uses a `$` directive that does not exist.
    #[error("strategic merge patch at {field:?}: unknown directive {directive}")]
    UnknownDirective {
        /// Dotted field path where the directive appeared (`""` for the root).
        field: String,
        /// The directive as written, e.g. `$patch: frobnicate` or `$foo`.
        directive: String,
    },
    /// A strategic merge patch directive has a malformed value or key.
    #[error("strategic merge patch at {field:?}: {reason}")]
    BadDirective {
        /// Dotted field path of the map holding the directive.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An element of a list merged by key lacks the merge key.
    #[error(
        "strategic merge patch at {field:?}: map {element} does not contain declared merge key: {key}"
    )]
    MissingMergeKey {
        /// Dotted field path of the list.
        field: String,
        /// The merge key, e.g. `name`.
        key: String,
        /// The offending element, as JSON.
        element: String,
    },
    /// A list cannot be merged (mixed element types, lists of lists, non-object elements in a
    /// list merged by key).
    #[error("strategic merge patch at {field:?}: {reason}")]
    InvalidList {
        /// Dotted field path of the list.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
