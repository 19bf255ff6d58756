//! The state a Fluentd node leaves behind, as the report shows it before a switch: in_tail pos
//! files (which files ferrentd resumes, from where), buf_file chunk folders (what is staged and
//! queued, in the order ferrentd delivers it) and in_systemd cursors.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config_parser::Element;

#[derive(Debug, Default, Serialize)]
pub struct NodeState {
    pub pos_files: Vec<PosFileState>,
    pub buffers: Vec<BufferState>,
    pub systemd_cursors: Vec<CursorState>,
}

#[derive(Debug, Serialize)]
pub struct PosFileState {
    pub pos_file: String,
    pub exists: bool,
    pub entries: Vec<PosEntry>,
}

#[derive(Debug, Serialize)]
pub struct PosEntry {
    pub path: String,
    pub position: u64,
    pub inode: u64,
    pub size: Option<u64>,
    /// `resume`, `rotated`, `missing`, `unwatched` or `truncated`.
    pub action: &'static str,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct BufferState {
    pub output: String,
    pub pattern: String,
    pub staged_chunks: usize,
    pub staged_bytes: u64,
    pub queued_chunks: usize,
    pub queued_bytes: u64,
    pub records: u64,
    /// Chunk files in the order ferrentd delivers them: queued, then staged, each oldest first.
    pub delivery_order: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CursorState {
    pub storage: String,
    pub cursor: Option<String>,
}

fn all_sections<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    for c in &e.elements {
        out.push(c);
        all_sections(c, out);
    }
}

/// Reads the state files the config's plugins name.
pub fn inspect(root: &Element) -> NodeState {
    let mut all = Vec::new();
    all_sections(root, &mut all);
    let root_dir = root
        .child("system")
        .and_then(|s| s.get("root_dir"))
        .map(PathBuf::from);
    let mut state = NodeState::default();
    for e in &all {
        match (e.name.as_str(), e.plugin_type()) {
            ("source", Some("tail")) => {
                if let Some(p) = e.get("pos_file") {
                    state.pos_files.push(pos_file_state(Path::new(p)));
                }
            }
            ("source", Some("systemd")) => {
                if let Some(p) = e.child("storage").and_then(|s| s.get("path")) {
                    state.systemd_cursors.push(cursor_state(Path::new(p)));
                }
            }
            ("match" | "store", Some(ty)) => {
                if let Some(b) = buffer_state(e, ty, root_dir.as_deref()) {
                    state.buffers.push(b);
                }
            }
            _ => {}
        }
    }
    state
}

fn pos_file_state(p: &Path) -> PosFileState {
    let mut st = PosFileState {
        pos_file: p.display().to_string(),
        exists: p.exists(),
        entries: Vec::new(),
    };
    let Ok(text) = std::fs::read(p) else {
        return st;
    };
    for line in text.split(|b| *b == b'\n') {
        let Some((path, position, inode)) = crate::plugins::in_tail::parse_pos_line(line) else {
            continue;
        };
        let meta = std::fs::metadata(&path).ok();
        let size = meta.as_ref().map(|m| m.len());
        let cur_inode = meta.as_ref().map(std::os::unix::fs::MetadataExt::ino);
        let (action, detail) = if position == crate::plugins::in_tail::UNWATCHED {
            (
                "unwatched",
                "Fluentd had stopped watching it: not resumed".to_string(),
            )
        } else {
            match (size, cur_inode) {
                (None, _) => ("missing", "the file is gone: nothing to resume".to_string()),
                (Some(s), Some(i)) if i == inode && s >= position => (
                    "resume",
                    format!("resumes at byte {position} of {s} ({} bytes to read)", s - position),
                ),
                (Some(s), Some(i)) if i == inode => (
                    "truncated",
                    format!("the file shrank to {s} bytes: read again from its start"),
                ),
                (Some(s), _) => (
                    "rotated",
                    format!("another file now has this path (rotated): its {s} bytes are read from the start"),
                ),
            }
        };
        st.entries.push(PosEntry {
            path,
            position,
            inode,
            size,
            action,
            detail,
        });
    }
    st
}

fn cursor_state(p: &Path) -> CursorState {
    let file = if p.is_dir() {
        p.join("storage.json")
    } else {
        p.to_path_buf()
    };
    let cursor = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("journal")
                .and_then(|j| j.as_str())
                .map(str::to_string)
        });
    CursorState {
        storage: file.display().to_string(),
        cursor,
    }
}

/// The chunk file pattern of a file buffer, as buf_file resolves `path`.
fn buffer_pattern(out: &Element, ty: &str, root_dir: Option<&Path>) -> Option<String> {
    let buf = out.child("buffer");
    let buf_type = buf
        .and_then(|b| b.plugin_type())
        .unwrap_or(if ty == "file" { "file" } else { "memory" });
    if buf_type != "file" {
        return None;
    }
    let suffix = buf.and_then(|b| b.get("path_suffix")).unwrap_or(".log");
    let path = match (buf.and_then(|b| b.get("path")), out.get("@id"), root_dir) {
        (Some(p), _, _) => p.to_string(),
        (None, Some(id), Some(root)) => root
            .join("worker0")
            .join(id)
            .join("buffer")
            .display()
            .to_string(),
        (None, _, _) if ty == "file" => out.get("path")?.to_string(),
        _ => return None,
    };
    let p = Path::new(&path);
    let base = p
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(if p.is_dir() || (!p.exists() && !path.contains(".*")) {
        p.join(format!("buffer.*{suffix}")).display().to_string()
    } else if base.contains(".*.") {
        path
    } else if base.ends_with(".*") {
        format!("{path}{suffix}")
    } else {
        format!("{path}.*{suffix}")
    })
}

fn buffer_state(out: &Element, ty: &str, root_dir: Option<&Path>) -> Option<BufferState> {
    let pattern = buffer_pattern(out, ty, root_dir)?;
    let (prefix, suffix) = pattern.rsplit_once(".*").unwrap_or((pattern.as_str(), ""));
    let mut st = BufferState {
        output: out
            .get("@id")
            .map(str::to_string)
            .unwrap_or_else(|| out.display_name()),
        pattern: pattern.clone(),
        staged_chunks: 0,
        staged_bytes: 0,
        queued_chunks: 0,
        queued_bytes: 0,
        records: 0,
        delivery_order: Vec::new(),
    };
    let mut chunks: Vec<(u8, f64, String)> = Vec::new();
    let found = glob::glob(&pattern)
        .map(|g| g.flatten().collect::<Vec<_>>())
        .unwrap_or_default();
    for f in found {
        let s = f.display().to_string();
        let Some(state) = s
            .strip_prefix(prefix)
            .and_then(|m| m.strip_suffix(suffix))
            .and_then(|m| m.strip_prefix('.'))
            .and_then(|m| m.bytes().next())
        else {
            continue;
        };
        let bytes = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        let meta = std::fs::read(format!("{s}.meta"))
            .ok()
            .and_then(|m| crate::plugins::buf_file::decode_meta(&m).ok());
        let (records, modified) = meta.map(|m| (m.records, m.modified)).unwrap_or((0, 0.0));
        st.records += records;
        match state {
            b'q' => {
                st.queued_chunks += 1;
                st.queued_bytes += bytes;
                chunks.push((0, modified, s));
            }
            b'b' => {
                st.staged_chunks += 1;
                st.staged_bytes += bytes;
                chunks.push((1, modified, s));
            }
            _ => {}
        }
    }
    chunks.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    st.delivery_order = chunks.into_iter().map(|(_, _, s)| s).collect();
    Some(st)
}

impl NodeState {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.pos_files.is_empty() && self.buffers.is_empty() && self.systemd_cursors.is_empty() {
            return s;
        }
        s.push_str("state left on this node:\n");
        for p in &self.pos_files {
            if !p.exists {
                let _ = writeln!(
                    s,
                    "  pos file {}: none yet (files are read as a new Fluentd would)",
                    p.pos_file
                );
                continue;
            }
            let _ = writeln!(s, "  pos file {}: {} files", p.pos_file, p.entries.len());
            for e in &p.entries {
                let _ = writeln!(s, "    {}: {}", e.path, e.detail);
            }
        }
        for b in &self.buffers {
            let _ = writeln!(
                s,
                "  file buffer of {} ({}): {} queued chunks ({} bytes), {} staged chunks ({} bytes), {} records; delivered first: {}",
                b.output,
                b.pattern,
                b.queued_chunks,
                b.queued_bytes,
                b.staged_chunks,
                b.staged_bytes,
                b.records,
                b.delivery_order.first().map(String::as_str).unwrap_or("nothing")
            );
        }
        for c in &self.systemd_cursors {
            let _ = writeln!(
                s,
                "  journal cursor {}: {}",
                c.storage,
                c.cursor
                    .as_deref()
                    .map_or("none (read_from_head decides)".to_string(), |c| format!(
                        "resumes after {c}"
                    ))
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn pos_files_and_chunks_are_read_as_fluentd_left_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let log = d.join("app.log");
        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        let ino = std::fs::metadata(&log).unwrap().ino();
        let pos = d.join("app.pos");
        std::fs::write(
            &pos,
            format!(
                "{}\t{:016x}\t{:016x}\n{}\tffffffffffffffff\t0000000000000001\n{}\t0000000000000004\t0000000000000002\n",
                log.display(),
                4,
                ino,
                d.join("old.log").display(),
                d.join("gone.log").display()
            ),
        )
        .unwrap();
        let buf = d.join("buf");
        std::fs::create_dir(&buf).unwrap();
        std::fs::write(
            buf.join("buffer.q5f0000000000000000000000000001.log"),
            b"1234",
        )
        .unwrap();
        std::fs::write(
            buf.join("buffer.b5f0000000000000000000000000002.log"),
            b"123456",
        )
        .unwrap();
        let conf = format!(
            "<source>\n  @type tail\n  path {0}/*.log\n  pos_file {1}\n  tag t\n  <parse>\n    @type none\n  </parse>\n</source>\n<match **>\n  @type forward\n  @id fwd\n  <server>\n    host 127.0.0.1\n  </server>\n  <buffer>\n    @type file\n    path {2}\n  </buffer>\n</match>\n",
            d.display(),
            pos.display(),
            buf.display()
        );
        let root = crate::config_parser::parse_str(&conf, Path::new("t.conf"), &Default::default())
            .unwrap();
        let st = inspect(&root);
        let e = &st.pos_files[0].entries;
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].action, e[0].detail.as_str()),
            ("resume", "resumes at byte 4 of 14 (10 bytes to read)")
        );
        assert_eq!(e[1].action, "unwatched");
        assert_eq!(e[2].action, "missing");
        let b = &st.buffers[0];
        assert_eq!(
            (
                b.queued_chunks,
                b.queued_bytes,
                b.staged_chunks,
                b.staged_bytes
            ),
            (1, 4, 1, 6)
        );
        assert!(b.delivery_order[0].ends_with("buffer.q5f0000000000000000000000000001.log"));
    }
}
