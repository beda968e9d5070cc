//! Uniform resource names: `<stack>/<component path>/<type>/<name>`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of a resource within a stack. Renaming a resource changes its URN; keep the old
/// one as an alias to avoid a replacement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Urn(String);

impl Urn {
    pub fn new(stack: &str, components: &[String], type_token: &str, name: &str) -> Urn {
        let mut s = String::with_capacity(
            stack.len() + type_token.len() + name.len() + 2 + components.iter().map(|c| c.len() + 1).sum::<usize>(),
        );
        s.push_str(stack);
        for c in components {
            s.push('/');
            s.push_str(c);
        }
        s.push('/');
        s.push_str(type_token);
        s.push('/');
        s.push_str(name);
        Urn(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the resource's own name.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The type token segment.
    pub fn type_token(&self) -> &str {
        let mut parts = self.0.rsplitn(3, '/');
        parts.next();
        parts.next().unwrap_or("")
    }

    /// Segments between the stack and the type: the component path.
    pub fn components(&self) -> Vec<&str> {
        let parts: Vec<&str> = self.0.split('/').collect();
        if parts.len() < 3 {
            return Vec::new();
        }
        parts[1..parts.len() - 2].to_vec()
    }
}

impl From<&str> for Urn {
    fn from(s: &str) -> Self {
        Urn(s.to_string())
    }
}

impl From<String> for Urn {
    fn from(s: String) -> Self {
        Urn(s)
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a resource, component or stack name: non-empty, at most 128 characters, and made of
/// letters, digits and `-_.:`, so that URNs split unambiguously on `/`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > 128 {
        return Err(format!("{kind} name `{name}` is longer than 128 characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        return Err(format!("{kind} name `{name}` contains `{}`; use letters, digits and `-_.:`", c.escape_default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urn_parts() {
        let urn = Urn::new("hello-dev", &["site".into(), "web".into()], "local:File", "index");
        assert_eq!(urn.as_str(), "hello-dev/site/web/local:File/index");
        assert_eq!(urn.name(), "index");
        assert_eq!(urn.type_token(), "local:File");
        assert_eq!(urn.components(), ["site", "web"]);
        let flat = Urn::new("s", &[], "t:x", "n");
        assert!(flat.components().is_empty());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("resource", "web-1.a_b").is_ok());
        assert!(validate_name("resource", "").is_err());
        assert!(validate_name("resource", "a/b").unwrap_err().contains("`/`"));
    }
}
