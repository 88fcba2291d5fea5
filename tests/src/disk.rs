//! A small filesystem that a test can fill up: a tmpfs of a few megabytes
//! mounted on a temporary directory (root only), to show what a coordinator
//! does when its data directory's disk is full.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `bytes`, or `None` (with the reason on stderr) when not
    /// root and `STAMPEDE_REQUIRE_NETNS` (which makes root tests required)
    /// is not `1`.
    pub fn mount(bytes: u64) -> Option<Self> {
        let required = std::env::var("STAMPEDE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        if !crate::running_as_root() {
            assert!(!required, "STAMPEDE_REQUIRE_NETNS=1 but mounting a tmpfs needs root");
            eprintln!("SKIPPED: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "stampede-test"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs failed");
        let filler = dir.path().join("filler");
        Some(Self { dir, filler })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk: a file grows until the filesystem refuses more.
    pub fn fill(&self) {
        let mut file = std::fs::File::create(&self.filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    /// Makes room again.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
