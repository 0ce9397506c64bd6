//! The kubeconfig file the control plane writes for kubectl and other clients.

use std::io::Write;
use std::path::Path;

/// Render a kubeconfig pointing at `server` (an `http://` URL) with context `sluice`.
#[must_use]
pub fn render(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sluice\n  cluster:\n    server: {server}\nusers:\n- name: sluice-admin\n  user: {{}}\ncontexts:\n- name: sluice\n  context:\n    cluster: sluice\n    user: sluice-admin\n    namespace: default\ncurrent-context: sluice\npreferences: {{}}\n"
    )
}

/// Write the kubeconfig atomically (temp file + rename), mode 0600.
pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render(server).as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kubeconfig_names_server_and_context() {
        let k = super::render("http://127.0.0.1:6443");
        assert!(k.contains("server: http://127.0.0.1:6443"));
        assert!(k.contains("current-context: sluice"));
        let v: serde_yaml::Value = serde_yaml::from_str(&k).unwrap();
        assert_eq!(v["contexts"][0]["context"]["cluster"], "sluice");
    }
}
