//! The data path's datagrams: an Ethernet frame of one overlay network, whole, or cut in
//! fragments when the connection's datagrams are smaller than the frame (before QUIC has
//! discovered the path's MTU, or on a path narrower than Ethernet's).
//!
//! ```text
//! whole:    [0][vni: 3 bytes][frame]
//! fragment: [1][vni: 3 bytes][id: 2 bytes][index][count][part]
//! ```
//!
//! Pure: no IO. What a peer sends is hostile: every length and index is checked.

use bytes::{BufMut, Bytes, BytesMut};

const WHOLE: u8 = 0;
const FRAGMENT: u8 = 1;
const WHOLE_HEADER: usize = 4;
const FRAGMENT_HEADER: usize = 8;
/// An Ethernet header: the shortest frame worth delivering.
pub const MIN_FRAME: usize = 14;
/// A jumbo frame: the longest frame carried.
pub const MAX_FRAME: usize = 9216;
const MAX_FRAGMENTS: usize = 16;
/// Frames being put back together at once, per connection: a fragment lost for good
/// leaves its frame here until newer ones push it out.
const MAX_PARTIAL: usize = 32;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("a datagram of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown datagram kind {0}")]
    Kind(u8),
    #[error("fragment {index} of {count} is out of bounds")]
    Fragment { index: u8, count: u8 },
    #[error("a frame of {0} bytes is outside the bounds of an Ethernet frame")]
    FrameSize(usize),
}

/// A datagram, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram {
    Whole {
        vni: u32,
        frame: Bytes,
    },
    Fragment {
        vni: u32,
        id: u16,
        index: u8,
        count: u8,
        part: Bytes,
    },
}

/// `frame` of network `vni` as datagrams of at most `max` bytes each: one if it fits,
/// else fragments under `id`. None if it cannot go (too long, or `max` too small).
pub fn encode(vni: u32, frame: &[u8], max: usize, id: u16) -> Option<Vec<Bytes>> {
    if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
        return None;
    }
    if frame.len() + WHOLE_HEADER <= max {
        let mut d = BytesMut::with_capacity(WHOLE_HEADER + frame.len());
        d.put_u32((u32::from(WHOLE) << 24) | (vni & 0xff_ffff));
        d.put_slice(frame);
        return Some(vec![d.freeze()]);
    }
    let room = max.checked_sub(FRAGMENT_HEADER).filter(|r| *r > 0)?;
    let count = frame.len().div_ceil(room);
    if count > MAX_FRAGMENTS {
        return None;
    }
    // Even parts, so the last is not a runt.
    let size = frame.len().div_ceil(count);
    let parts = frame.chunks(size).enumerate().map(|(index, part)| {
        let mut d = BytesMut::with_capacity(FRAGMENT_HEADER + part.len());
        d.put_u32((u32::from(FRAGMENT) << 24) | (vni & 0xff_ffff));
        d.put_u16(id);
        d.put_u8(index as u8);
        d.put_u8(count as u8);
        d.put_slice(part);
        d.freeze()
    });
    Some(parts.collect())
}

pub fn decode(d: Bytes) -> Result<Datagram, WireError> {
    if d.len() < WHOLE_HEADER {
        return Err(WireError::Short(d.len()));
    }
    let vni = u32::from_be_bytes([0, d[1], d[2], d[3]]);
    match d[0] {
        WHOLE => {
            let frame = d.slice(WHOLE_HEADER..);
            if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
                return Err(WireError::FrameSize(frame.len()));
            }
            Ok(Datagram::Whole { vni, frame })
        }
        FRAGMENT => {
            if d.len() <= FRAGMENT_HEADER {
                return Err(WireError::Short(d.len()));
            }
            let (index, count) = (d[6], d[7]);
            if count < 2 || usize::from(count) > MAX_FRAGMENTS || index >= count {
                return Err(WireError::Fragment { index, count });
            }
            Ok(Datagram::Fragment {
                vni,
                id: u16::from_be_bytes([d[4], d[5]]),
                index,
                count,
                part: d.slice(FRAGMENT_HEADER..),
            })
        }
        kind => Err(WireError::Kind(kind)),
    }
}

/// Frames being put back together from the fragments of one connection.
#[derive(Default)]
pub struct Reassembly {
    partial: std::collections::VecDeque<Partial>,
}

struct Partial {
    vni: u32,
    id: u16,
    parts: Vec<Option<Bytes>>,
    len: usize,
}

impl Reassembly {
    /// Takes one fragment: the whole frame once its last part is in.
    pub fn add(&mut self, vni: u32, id: u16, index: u8, count: u8, part: Bytes) -> Option<Bytes> {
        let at = match self.partial.iter().position(|p| p.vni == vni && p.id == id) {
            Some(at) => at,
            None => {
                if self.partial.len() == MAX_PARTIAL {
                    self.partial.pop_front();
                }
                self.partial.push_back(Partial {
                    vni,
                    id,
                    parts: vec![None; usize::from(count)],
                    len: 0,
                });
                self.partial.len() - 1
            }
        };
        let p = &mut self.partial[at];
        // A count that differs from the first fragment's: a different frame reusing the
        // id (ids wrap), or a lie. Start over with this one.
        if p.parts.len() != usize::from(count) {
            p.parts = vec![None; usize::from(count)];
            p.len = 0;
        }
        let slot = &mut p.parts[usize::from(index)];
        if slot.is_none() {
            p.len += part.len();
            *slot = Some(part);
        }
        if p.len > MAX_FRAME {
            self.partial.remove(at);
            return None;
        }
        if p.parts.iter().any(Option::is_none) {
            return None;
        }
        let done = self.partial.remove(at)?;
        let mut frame = BytesMut::with_capacity(done.len);
        for part in done.parts.into_iter().flatten() {
            frame.put_slice(&part);
        }
        (frame.len() >= MIN_FRAME).then(|| frame.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    fn reassemble(datagrams: Vec<Bytes>) -> Option<(u32, Bytes)> {
        let mut r = Reassembly::default();
        let mut out = None;
        for d in datagrams {
            match decode(d).unwrap() {
                Datagram::Whole { vni, frame } => out = Some((vni, frame)),
                Datagram::Fragment {
                    vni,
                    id,
                    index,
                    count,
                    part,
                } => {
                    if let Some(f) = r.add(vni, id, index, count, part) {
                        out = Some((vni, f));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_frame_that_fits_goes_whole() {
        let f = frame(1464);
        let d = encode(4097, &f, 1500, 0).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].len(), 1468);
        assert_eq!(reassemble(d), Some((4097, Bytes::from(f))));
    }

    #[test]
    fn a_frame_too_big_for_the_path_goes_in_even_fragments_in_any_order() {
        let f = frame(1464);
        let mut d = encode(7, &f, 1162, 9).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d.len() <= 1162));
        assert_eq!(d[0].len(), d[1].len());
        d.reverse();
        assert_eq!(reassemble(d), Some((7, Bytes::from(f))));
    }

    #[test]
    fn frames_out_of_bounds_are_not_sent() {
        assert_eq!(encode(1, &frame(10), 1500, 0), None);
        assert_eq!(encode(1, &frame(MAX_FRAME + 1), 65000, 0), None);
        assert_eq!(encode(1, &frame(1464), 8, 0), None);
        assert_eq!(encode(1, &frame(9000), 100, 0), None);
    }

    #[test]
    fn hostile_datagrams_are_refused() {
        assert_eq!(
            decode(Bytes::from_static(&[0, 0])),
            Err(WireError::Short(2))
        );
        assert_eq!(
            decode(Bytes::from_static(&[9, 0, 0, 1, 0])),
            Err(WireError::Kind(9))
        );
        assert_eq!(
            decode(Bytes::from_static(&[0, 0, 0, 1, 0, 0])),
            Err(WireError::FrameSize(2))
        );
        assert_eq!(
            decode(Bytes::from_static(&[1, 0, 0, 1, 0, 0, 3, 3, 0xff])),
            Err(WireError::Fragment { index: 3, count: 3 })
        );
        assert_eq!(
            decode(Bytes::from_static(&[1, 0, 0, 1, 0, 0, 0, 200, 0xff])),
            Err(WireError::Fragment {
                index: 0,
                count: 200
            })
        );
    }

    #[test]
    fn lost_fragments_are_forgotten_and_ids_reused() {
        let mut r = Reassembly::default();
        // Fragments whose partners never come fill the table, which forgets the oldest.
        for id in 0..(MAX_PARTIAL as u16 + 5) {
            assert_eq!(r.add(1, id, 0, 2, Bytes::from(frame(20))), None);
        }
        assert_eq!(r.partial.len(), MAX_PARTIAL);
        // An id in use with another count starts over rather than mixing two frames.
        let id = MAX_PARTIAL as u16;
        assert_eq!(r.add(1, id, 2, 3, Bytes::from(frame(20))), None);
        assert_eq!(r.add(1, id, 0, 3, Bytes::from(frame(20))), None);
        let whole = r.add(1, id, 1, 3, Bytes::from(frame(20))).unwrap();
        assert_eq!(whole.len(), 60);
        // A repeated fragment counts once.
        assert_eq!(r.add(2, 1, 0, 2, Bytes::from(frame(20))), None);
        assert_eq!(r.add(2, 1, 0, 2, Bytes::from(frame(20))), None);
        assert_eq!(r.add(2, 1, 1, 2, Bytes::from(frame(20))).unwrap().len(), 40);
    }
}
