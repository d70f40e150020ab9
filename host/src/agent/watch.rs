//! Notices changes to the policy sources by polling their [`Stamp`].
//!
//! Polling rather than inotify: it sees files named directly, editors that
//! save by renaming a temporary file over the original, and ConfigMap
//! volumes that swap a symlink, all with one rule, for the price of a
//! `stat` per file every [`POLL`].

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

use super::sources::Stamp;

/// How often the sources are looked at. A change is reported once two
/// looks in a row agree: editors and `kubectl cp` write in several steps.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct Watcher {
    paths: Vec<PathBuf>,
    seen: Stamp,
    /// A change seen at the last look, waiting to hold still.
    settling: Option<Stamp>,
    // Kept across calls: the agent's loop drops `changed` whenever another
    // event comes first, and busy flows must not keep resetting the clock.
    looks: Interval,
}

impl Watcher {
    /// Starts watching `paths`; needs a tokio runtime.
    pub fn new(paths: Vec<PathBuf>) -> Watcher {
        let seen = Stamp::of(&paths);
        let mut looks = tokio::time::interval(POLL);
        looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Watcher { paths, seen, settling: None, looks }
    }

    /// Takes the sources as they are now as seen, before they are read by
    /// other means (SIGHUP): a change after this point is still reported.
    pub fn mark_seen(&mut self) {
        self.seen = Stamp::of(&self.paths);
        self.settling = None;
    }

    /// Returns once the sources changed and then held still for a look.
    /// Cancel-safe.
    pub async fn changed(&mut self) {
        loop {
            self.looks.tick().await;
            let now = Stamp::of(&self.paths);
            if now == self.seen {
                self.settling = None;
            } else if self.settling.as_ref() == Some(&now) {
                self.seen = now;
                self.settling = None;
                return;
            } else {
                self.settling = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Watcher;

    /// Whether the watcher reports a change within a second.
    async fn reports(watcher: &mut Watcher) -> bool {
        tokio::time::timeout(Duration::from_secs(1), watcher.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn reports_a_change_once_it_holds_still() {
        let dir = std::env::temp_dir().join(format!("porin-watch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut watcher = Watcher::new(vec![dir.clone()]);
        assert!(!reports(&mut watcher).await, "nothing changed");
        std::fs::write(dir.join("a.yaml"), "x").unwrap();
        assert!(reports(&mut watcher).await);
        assert!(!reports(&mut watcher).await, "reported once");
        std::fs::write(dir.join("b.yaml"), "x").unwrap();
        watcher.mark_seen();
        assert!(!reports(&mut watcher).await, "already seen");
        std::fs::remove_dir_all(&dir).ok();
    }
}
