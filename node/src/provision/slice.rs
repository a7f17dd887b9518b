//! One partition of an image as a file of its own: reads and writes through it never
//! leave the partition's bytes, whatever the file system inside asks for.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

pub struct Slice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Slice<'a> {
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        Slice {
            file,
            start,
            len,
            pos: 0,
        }
    }

    /// How much of `want` bytes from the current position is inside the partition.
    fn room(&self, want: usize) -> usize {
        let left = self.len.saturating_sub(self.pos);
        usize::try_from(left).map_or(want, |left| left.min(want))
    }
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.room(buf.len());
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a write past the partition's end",
            ));
        }
        let written = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) if n <= self.len => {
                self.pos = n;
                Ok(n)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek outside the partition",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("img");
        std::fs::write(&path, [0u8; 32]).expect("write");
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let mut s = Slice::new(&file, 8, 8);
        s.write_all(b"abcd").expect("in");
        // Only what fits is written; then nothing more.
        assert_eq!(s.write(b"efghij").expect("partly"), 4);
        assert!(s.write(b"x").is_err());
        assert!(s.seek(SeekFrom::Start(9)).is_err());
        assert!(s.seek(SeekFrom::Current(-9)).is_err());
        s.seek(SeekFrom::End(-2)).expect("seek");
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).expect("read"), 2);
        assert_eq!(&buf[..2], b"gh");
        let all = std::fs::read(&path).expect("read back");
        assert_eq!(&all[8..16], b"abcdefgh");
        assert!(all[..8].iter().chain(&all[16..]).all(|b| *b == 0));
    }
}
