//! A resumable line source: reads a file in chunks of whole lines, tracking
//! each line's index and the byte position to resume from.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// A chunk of whole lines.
pub struct LineChunk {
    /// The bytes of the lines (each ends with `\n`, except possibly the file's last).
    pub bytes: Vec<u8>,
    /// Index (0-based) of the chunk's first line in the file.
    pub first_line: u64,
    /// Byte position in the file just after the chunk.
    pub end_pos: u64,
}

impl LineChunk {
    /// The lines of the chunk, without their terminators.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        let mut start = 0;
        let mut ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
        std::iter::from_fn(move || {
            let end = ends.next()?;
            let line = &body[start..end];
            start = end + 1;
            Some(line)
        })
    }
}

/// Reads a file as chunks of lines, starting at a checkpointed position.
pub struct LineSource {
    file: File,
    pos: u64,
    next_line: u64,
    /// Bytes read but not yet returned (start of the next chunk).
    carry: Vec<u8>,
    /// A returned chunk buffer, reused for the next chunk (no re-allocation).
    spare: Vec<u8>,
    eof: bool,
    len: u64,
}

impl LineSource {
    /// Opens `path` positioned at byte `pos`, whose line index is `line`.
    pub fn open(path: &Path, pos: u64, line: u64) -> io::Result<LineSource> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        // From the start there is nothing to seek: a named pipe reads too.
        if pos > 0 {
            file.seek(SeekFrom::Start(pos))?;
        }
        Ok(LineSource {
            file,
            pos,
            next_line: line,
            carry: Vec::new(),
            spare: Vec::new(),
            eof: false,
            len,
        })
    }

    /// File length in bytes (for progress reporting).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the next chunk of at most `max_lines` lines, reading about
    /// `read_bytes` at a time; `None` at end of file. A last line without a
    /// terminator is returned at end of file.
    pub fn next_chunk(
        &mut self,
        max_lines: usize,
        read_bytes: usize,
    ) -> io::Result<Option<LineChunk>> {
        let max_lines = max_lines.max(1);
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut lines = 0usize;
        let mut scanned = 0usize;
        let mut cut = None;
        loop {
            for nl in memchr::memchr_iter(b'\n', &buf[scanned..]) {
                lines += 1;
                if lines == max_lines {
                    cut = Some(scanned + nl + 1);
                    break;
                }
            }
            if cut.is_some() || self.eof {
                break;
            }
            scanned = buf.len();
            let old = buf.len();
            buf.resize(old + read_bytes.max(1 << 16), 0);
            let n = self.file.read(&mut buf[old..])?;
            buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let cut = cut.unwrap_or(buf.len());
        self.carry.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let chunk = LineChunk {
            first_line: self.next_line,
            end_pos: self.pos + buf.len() as u64,
            bytes: buf,
        };
        self.pos = chunk.end_pos;
        self.next_line += chunk.lines().count() as u64;
        Ok(Some(chunk))
    }

    /// Gives a chunk's buffer back for reuse by the next [`LineSource::next_chunk`].
    pub fn recycle(&mut self, chunk: LineChunk) {
        if chunk.bytes.capacity() > self.spare.capacity() {
            self.spare = chunk.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn chunks_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        let mut f = File::create(&p).unwrap();
        for i in 0..10 {
            writeln!(f, "line{i}").unwrap();
        }
        write!(f, "last").unwrap();
        drop(f);
        let mut src = LineSource::open(&p, 0, 0).unwrap();
        let mut all = Vec::new();
        let mut resume = (0, 0);
        while let Some(c) = src.next_chunk(3, 1 << 20).unwrap() {
            let lines: Vec<String> = c
                .lines()
                .map(|l| String::from_utf8(l.to_vec()).unwrap())
                .collect();
            if c.first_line == 3 {
                resume = (c.end_pos, c.first_line + lines.len() as u64);
            }
            all.extend(lines);
        }
        assert_eq!(all.len(), 11);
        assert_eq!(all[10], "last");
        let mut src = LineSource::open(&p, resume.0, resume.1).unwrap();
        let c = src.next_chunk(100, 1 << 20).unwrap().unwrap();
        assert_eq!(c.first_line, 6);
        assert_eq!(c.lines().next().unwrap(), b"line6");
    }
}
