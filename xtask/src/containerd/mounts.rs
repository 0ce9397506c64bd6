//! Mounts under a containerd's directory: read from `/proc/self/mountinfo`
//! and lazily undone at stop.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Mount points under `dir` (from /proc/self/mountinfo), deepest first.
pub(super) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    mounts.sort_by_key(|point| std::cmp::Reverse(point.as_os_str().len()));
    mounts.dedup();
    mounts
}

/// Lazily unmounts everything under `dir`; returns what is still mounted.
pub(super) fn unmount_under(dir: &Path) -> Vec<String> {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return Vec::new();
        }
        for point in mounts {
            let Ok(path) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
            unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    mounts_under(dir)
        .into_iter()
        .map(|point| point.display().to_string())
        .collect()
}

/// Removes the (now unmounted) netns files the CRI plugin keeps under `state`.
pub(super) fn remove_netns_files(state: &Path) {
    let dir = state.join("io.containerd.grpc.v1.cri").join("netns");
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.filter_map(Result::ok) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        if let Some(digits) = octal {
            let code = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
