//! `--export-flows FILE`: flows as JSON lines in a file that rotates by size
//! (FILE, FILE.1, ... FILE.N, oldest last), for log shippers such as Fluent
//! Bit or Promtail. The exporter is a store reader like any other: if the
//! disk is slower than the flows, it skips ahead and writes how many it lost.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::{FlowFollower, Observer};

/// Where and how much to keep.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub path: PathBuf,
    /// Rotate when the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept besides the current one.
    pub max_backups: usize,
}

/// One line for flows a reader lost, as Hubble writes them.
pub fn lost_events_line(count: u64) -> String {
    format!(r#"{{"lost_events":{{"source":"PORIN_FLOW_STORE","num_events_lost":{count}}}}}"#)
}

/// An append-only file that rotates by size.
#[derive(Debug)]
pub struct RotatingFile {
    settings: ExportSettings,
    file: BufWriter<File>,
    size: u64,
}

fn open(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

fn backup(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

impl RotatingFile {
    pub fn open(settings: ExportSettings) -> anyhow::Result<RotatingFile> {
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let (file, size) = open(&settings.path)
            .with_context(|| format!("cannot open {} to export flows", settings.path.display()))?;
        Ok(RotatingFile { settings, file, size })
    }

    /// Writes `line` and a newline.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let length = line.len() as u64 + 1;
        if self.size > 0 && self.size + length > self.settings.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.size += length;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let path = &self.settings.path;
        if self.settings.max_backups == 0 {
            std::fs::remove_file(path)?;
        } else {
            for index in (1..self.settings.max_backups).rev() {
                let from = backup(path, index);
                if from.exists() {
                    std::fs::rename(&from, backup(path, index + 1))?;
                }
            }
            std::fs::rename(path, backup(path, 1))?;
        }
        (self.file, self.size) = open(path)?;
        Ok(())
    }
}

/// Follows the store from now on, writing every flow, until the task is
/// dropped. A write error is logged and ends the export (the agent goes on).
pub async fn run(observer: Arc<Observer>, mut file: RotatingFile) {
    let mut follower = FlowFollower::new(&observer);
    let mut line = Vec::new();
    loop {
        let (lost, flows) = follower.next().await;
        let mut write = |file: &mut RotatingFile| -> std::io::Result<()> {
            if lost > 0 {
                file.write_line(lost_events_line(lost).as_bytes())?;
            }
            for stored in &flows {
                line.clear();
                stored.flow.write_json_line(&mut line);
                file.write_line(&line)?;
            }
            file.flush()
        };
        let written = write(&mut file);
        if let Err(err) = written {
            tracing::error!("flow export to {} stopped: {err}", file.settings.path.display());
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest_backups() {
        let dir = std::env::temp_dir().join(format!("porin-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flows.jsonl");
        let settings = ExportSettings { path: path.clone(), max_bytes: 20, max_backups: 2 };
        let mut file = RotatingFile::open(settings).unwrap();
        for i in 0..8 {
            file.write_line(format!("line-{i}-123456").as_bytes()).unwrap(); // 14 bytes + newline
        }
        file.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "line-7-123456\n");
        assert_eq!(read(&backup(&path, 1)), "line-6-123456\n");
        assert_eq!(read(&backup(&path, 2)), "line-5-123456\n");
        assert!(!backup(&path, 3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lost_events_read_like_hubbles() {
        let line: serde_json::Value = serde_json::from_str(&lost_events_line(7)).unwrap();
        assert_eq!(line["lost_events"]["num_events_lost"], 7);
    }
}
