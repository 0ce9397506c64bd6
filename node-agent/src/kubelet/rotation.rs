//! Container log rotation by size, as upstream's container log manager does it: when a
//! running container's log file reaches `containerLogMaxSize`, older rotated files beyond
//! what `containerLogMaxFiles` allows are removed, the rest compressed (`.gz`), the current
//! file renamed to `<file>.<YYYYMMDD-hhmmss>`, and the runtime told to reopen it (CRI
//! `ReopenContainerLog`). If the runtime refuses, the rename is undone. At most
//! `max_files` files remain per container attempt: the current one, the newest rotated
//! one (plain, still being read by any follower), and older ones compressed.

use std::future::Future;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;

/// Upstream's `containerLogMaxSize` and `containerLogMaxFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate when the current file reaches this many bytes.
    pub max_size: u64,
    /// Files kept per container attempt, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for Policy {
    /// Upstream's defaults: 10 MiB, 5 files.
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Parses a Kubernetes quantity of bytes such as `10Mi`, `512Ki`, `1G` or `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected digits and a unit such as 10Mi"))?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

const COMPRESSED: &str = ".gz";

/// The rotated name of `log` at `now`: `<log>.<YYYYMMDD-hhmmss>` (UTC), upstream's format.
pub fn rotated_name(log: &Path, now: Timestamp) -> PathBuf {
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let mut name = log.as_os_str().to_owned();
    name.push(".");
    name.push(stamp);
    PathBuf::from(name)
}

/// The rotated files of `log` (`<log>.*`), oldest first (their names sort by time).
fn rotated(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(base)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{base}.");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.starts_with(&prefix)
                    && !Path::new(n)
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("tmp"))
            })
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

/// Gzips `path` to `<path>.gz` (through a temporary file) and removes `path`.
fn compress(path: &Path) -> io::Result<()> {
    let mut target = path.as_os_str().to_owned();
    target.push(COMPRESSED);
    let target = PathBuf::from(target);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut input = std::fs::File::open(path)?;
        let out = std::fs::File::create(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        io::copy(&mut input, &mut gz)?;
        gz.finish()?.flush()?;
    }
    std::fs::rename(&tmp, &target)?;
    std::fs::remove_file(path)
}

/// Rotates `log` if it has reached `policy.max_size`: `reopen` asks the runtime to reopen
/// the file. Returns whether it rotated.
pub async fn rotate_if_needed<F, Fut>(
    log: &Path,
    policy: Policy,
    now: Timestamp,
    reopen: F,
) -> io::Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let size = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if size < policy.max_size {
        return Ok(false);
    }
    let mut old = rotated(log)?;
    // A plain file next to its compressed copy is an interrupted compression: drop it.
    old.retain(|p| {
        let mut gz = p.as_os_str().to_owned();
        gz.push(COMPRESSED);
        if Path::new(&gz).exists() {
            let _ = std::fs::remove_file(p);
            false
        } else {
            true
        }
    });
    // Room for the file about to be rotated and the current one.
    let keep = policy.max_files.max(2) - 2;
    let excess = old.len().saturating_sub(keep);
    for p in old.drain(..excess) {
        std::fs::remove_file(&p)?;
    }
    for p in &old {
        if p.extension().is_none_or(|e| e != "gz") {
            compress(p)?;
        }
    }
    let target = rotated_name(log, now);
    std::fs::rename(log, &target)?;
    if let Err(e) = reopen().await {
        // Put it back, so the runtime keeps writing where readers look.
        std::fs::rename(&target, log)?;
        return Err(io::Error::other(format!(
            "the runtime did not reopen {}: {e}",
            log.display()
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10Mi").unwrap(), 10 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1K").unwrap(), 1000);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1Xi").is_err());
        assert!(parse_size("99999999999999999999Gi").is_err());
    }

    #[test]
    fn rotated_names_sort_by_time() {
        let a = rotated_name(
            Path::new("/l/0.log"),
            "2026-12-01T20:15:00Z".parse().unwrap(),
        );
        assert_eq!(a, Path::new("/l/0.log.20261201-201500"));
        let b = rotated_name(
            Path::new("/l/0.log"),
            "2026-12-01T20:15:01Z".parse().unwrap(),
        );
        assert!(a < b);
    }

    #[tokio::test]
    async fn rotates_keeps_max_files_and_compresses_older() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let policy = Policy {
            max_size: 10,
            max_files: 3,
        };
        let reopened = std::cell::Cell::new(0);
        for i in 0..5 {
            std::fs::write(&log, format!("line {i} is longer than ten bytes\n")).unwrap();
            let now: Timestamp = format!("2026-12-01T20:00:0{i}Z").parse().unwrap();
            let did = rotate_if_needed(&log, policy, now, || async {
                reopened.set(reopened.get() + 1);
                // The runtime opens a fresh file at the same path.
                std::fs::write(&log, "").unwrap();
                Ok(())
            })
            .await
            .unwrap();
            assert!(did, "round {i}");
        }
        assert_eq!(reopened.get(), 5);
        let left = names(dir.path());
        // The current file, the newest rotated one plain, one older compressed: 3 files.
        assert_eq!(left.len(), 3, "{left:?}");
        assert_eq!(left[0], "0.log");
        assert!(
            Path::new(&left[1]).extension().is_some_and(|e| e == "gz"),
            "{left:?}"
        );
        assert!(
            Path::new(&left[2]).extension().is_none_or(|e| e != "gz"),
            "{left:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&left[2])).unwrap(),
            "line 4 is longer than ten bytes\n"
        );
        let mut gz =
            flate2::read::GzDecoder::new(std::fs::File::open(dir.path().join(&left[1])).unwrap());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut gz, &mut text).unwrap();
        assert_eq!(text, "line 3 is longer than ten bytes\n");
    }

    #[tokio::test]
    async fn small_files_stay_and_a_refused_reopen_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("1.log");
        std::fs::write(&log, "short\n").unwrap();
        let policy = Policy {
            max_size: 100,
            max_files: 5,
        };
        let now = Timestamp::now();
        assert!(
            !rotate_if_needed(&log, policy, now, || async { Ok(()) })
                .await
                .unwrap()
        );
        std::fs::write(&log, "x".repeat(200)).unwrap();
        let e = rotate_if_needed(&log, policy, now, || async { Err("no".to_string()) })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not reopen"), "{e}");
        assert_eq!(names(dir.path()), ["1.log"]);
        assert!(
            !rotate_if_needed(&dir.path().join("none.log"), policy, now, || async {
                Ok(())
            })
            .await
            .unwrap()
        );
    }
}
