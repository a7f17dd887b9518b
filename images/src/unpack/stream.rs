//! Reader wrappers around a layer stream: attributing errors, bounding reads, and
//! decoding multi-frame zstd.

use super::*;

/// State shared by the reader wrappers, so that an `io::Error` coming out of the tar crate can
/// be attributed: the caller's reader failing is I/O, a tripped allowance or anything else is
/// bad content.
#[derive(Default)]
pub(super) struct Watch {
    pub(super) source_failed: Cell<bool>,
    pub(super) used: Cell<u64>,
    pub(super) allowance: Cell<u64>,
    pub(super) tripped: Cell<bool>,
}

impl Watch {
    pub(super) fn checkpoint(&self, allowance: u64) {
        self.used.set(0);
        self.allowance.set(allowance);
    }

    pub(super) fn classify(&self, source: io::Error, after: &str) -> UnpackError {
        if self.source_failed.get() {
            UnpackError::Read(source)
        } else if self.tripped.get() {
            UnpackError::HeadersTooLarge {
                after: after.to_string(),
                limit: HEADER_ALLOWANCE,
            }
        } else {
            UnpackError::Corrupt {
                after: after.to_string(),
                source,
            }
        }
    }
}

/// The caller's reader, flagging its own failures.
pub(super) struct Source<R> {
    pub(super) inner: R,
    pub(super) watch: Rc<Watch>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.watch.source_failed.set(true);
            }
        })
    }
}

/// Fails once more than the current allowance is read since the last checkpoint.
pub(super) struct Allowance<R> {
    pub(super) inner: R,
    pub(super) watch: Rc<Watch>,
}

impl<R: Read> Read for Allowance<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let w = &self.watch;
        let left = w.allowance.get().saturating_sub(w.used.get());
        if left == 0 && !buf.is_empty() {
            // Exactly at the limit is fine if the stream ends here.
            if self.inner.read(&mut [0u8; 1])? == 0 {
                return Ok(0);
            }
            w.tripped.set(true);
            return Err(io::Error::other("allowance exceeded"));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        w.used.set(w.used.get() + n as u64);
        Ok(n)
    }
}

/// A zstd stream of any number of frames; ruzstd's `StreamingDecoder` stops after one, and
/// zstd:chunked layers have many plus skippable ones.
pub(super) struct ZstdFrames<R> {
    pub(super) src: R,
    pub(super) dec: FrameDecoder,
    pub(super) in_frame: bool,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bad = |e: FrameDecoderError| io::Error::new(io::ErrorKind::InvalidData, e);
        loop {
            if !self.in_frame {
                if self.src.fill_buf()?.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                match self.dec.init(&mut self.src) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped =
                            io::copy(&mut (&mut self.src).take(length.into()), &mut io::sink())?;
                        if skipped != u64::from(length) {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    Err(e) => return Err(bad(e)),
                }
                continue;
            }
            while self.dec.can_collect() < buf.len() && !self.dec.is_finished() {
                let want = buf.len() - self.dec.can_collect();
                self.dec
                    .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBytes(want))
                    .map_err(bad)?;
            }
            let n = self.dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.in_frame = false;
        }
    }
}
