//! Field paths printed as `k8s.io/apimachinery/pkg/util/validation/field.Path`
//! prints them: `a.b`, `a[key]`, `a[0]`.

/// A rendered field path; the empty path is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub(crate) fn new(s: &str) -> Self {
        Self(s.to_string())
    }

    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as upstream prints it, where the root is a nil `*field.Path`.
    pub(crate) fn or_nil(&self) -> String {
        if self.0.is_empty() {
            "<nil>".into()
        } else {
            self.0.clone()
        }
    }
}
