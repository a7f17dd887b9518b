//! The MBR partition table of a disk image: the four primary entries, each checked
//! against the image's size. The image is hostile input: nothing here trusts an offset
//! or a length before it is checked.

const SECTOR: u64 = 512;
const SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// Where the four 16-byte entries start in the first sector.
const TABLE: usize = 446;

/// One primary partition, in bytes from the start of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1 to 4, as Linux numbers them (`/dev/sdX1`).
    pub number: u8,
    pub kind: u8,
    pub start: u64,
    pub len: u64,
}

impl Partition {
    /// FAT12, FAT16 or FAT32, as MBR types name them.
    pub fn is_fat(&self) -> bool {
        matches!(self.kind, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e)
    }

    pub fn is_linux(&self) -> bool {
        self.kind == 0x83
    }
}

/// Why an image's table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbrError {
    #[error("it is {0} bytes long, shorter than a partition table")]
    TooShort(u64),
    #[error("no MBR partition table (the first sector does not end in 55 AA)")]
    NoSignature,
    #[error("it has a GPT partition table; Raspberry Pi OS images use MBR")]
    Gpt,
    #[error("partition {number} ({start_sector} + {sectors} sectors) runs past the image's end ({image_sectors} sectors)")]
    PastEnd {
        number: u8,
        start_sector: u64,
        sectors: u64,
        image_sectors: u64,
    },
    #[error("partition {number} starts at sector 0, over the partition table")]
    OverTable { number: u8 },
    #[error("partitions {0} and {1} overlap")]
    Overlap(u8, u8),
}

/// The used primary partitions in `first` (the image's first sector), for an image of
/// `image_len` bytes.
pub fn parse(first: &[u8], image_len: u64) -> Result<Vec<Partition>, MbrError> {
    if first.len() < SECTOR as usize || image_len < SECTOR {
        return Err(MbrError::TooShort(image_len.min(first.len() as u64)));
    }
    if first[510..512] != SIGNATURE {
        return Err(MbrError::NoSignature);
    }
    let image_sectors = image_len / SECTOR;
    let mut found: Vec<Partition> = Vec::new();
    for (i, entry) in first[TABLE..TABLE + 64].chunks_exact(16).enumerate() {
        let number = i as u8 + 1;
        let kind = entry[4];
        let start_sector = u64::from(u32::from_le_bytes([
            entry[8], entry[9], entry[10], entry[11],
        ]));
        let sectors = u64::from(u32::from_le_bytes([
            entry[12], entry[13], entry[14], entry[15],
        ]));
        if kind == 0 || sectors == 0 {
            continue;
        }
        if kind == 0xee {
            return Err(MbrError::Gpt);
        }
        if start_sector == 0 {
            return Err(MbrError::OverTable { number });
        }
        // Both are u32s widened to u64: the sum cannot overflow.
        if start_sector + sectors > image_sectors {
            return Err(MbrError::PastEnd {
                number,
                start_sector,
                sectors,
                image_sectors,
            });
        }
        let part = Partition {
            number,
            kind,
            start: start_sector * SECTOR,
            len: sectors * SECTOR,
        };
        if let Some(other) = found
            .iter()
            .find(|o| part.start < o.start + o.len && o.start < part.start + part.len)
        {
            return Err(MbrError::Overlap(other.number, number));
        }
        found.push(part);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        for (i, (kind, start, len)) in entries.iter().enumerate() {
            let e = &mut s[TABLE + 16 * i..TABLE + 16 * (i + 1)];
            e[4] = *kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&len.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn a_raspios_layout() {
        let mbr = table(&[(0x0c, 8192, 1_048_576), (0x83, 1_056_768, 4_000_000)]);
        let parts = parse(&mbr, 6_000_000 * 512).expect("valid");
        assert_eq!(parts.len(), 2);
        assert!(parts[0].is_fat() && parts[1].is_linux());
        assert_eq!(
            (parts[0].start, parts[0].len),
            (8192 * 512, 1_048_576 * 512)
        );
        assert_eq!(parts[1].number, 2);
    }

    #[test]
    fn hostile_tables_are_refused() {
        let len = 100_000 * 512;
        assert_eq!(parse(&[0u8; 100], len), Err(MbrError::TooShort(100)));
        assert_eq!(parse(&vec![0u8; 512], len), Err(MbrError::NoSignature));
        assert_eq!(parse(&table(&[(0xee, 1, 99_999)]), len), Err(MbrError::Gpt));
        assert_eq!(
            parse(&table(&[(0x0c, 0, 10)]), len),
            Err(MbrError::OverTable { number: 1 })
        );
        let past = parse(&table(&[(0x0c, 2048, u32::MAX)]), len).unwrap_err();
        assert!(
            matches!(past, MbrError::PastEnd { number: 1, .. }),
            "{past}"
        );
        assert_eq!(
            parse(&table(&[(0x0c, 2048, 4096), (0x83, 4000, 100)]), len),
            Err(MbrError::Overlap(1, 2))
        );
        // Empty entries are skipped, not refused.
        assert_eq!(
            parse(&table(&[(0, 5, 5), (0x83, 2048, 10)]), len).map(|p| p.len()),
            Ok(1)
        );
    }
}
