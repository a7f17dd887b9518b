//! The image's boot partition: found through the MBR, read and written with `fatfs`
//! inside a `Slice` of the image, so nothing outside the partition can change.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::mbr::{self, Partition};
use super::slice::Slice;
use super::ProvisionError;

type Fs<'a> = fatfs::FileSystem<Slice<'a>>;
type Dir<'a, 'b> = fatfs::Dir<'b, Slice<'a>>;

/// Past this, a text file on the boot partition is not the small one it should be.
const TEXT_MAX: u64 = 64 << 10;
/// Entries read from one directory at most: a corrupt one may loop.
const DIR_ENTRIES_MAX: usize = 4096;

/// An image (or a device) whose table names a FAT boot and a Linux root partition.
pub struct Image {
    path: PathBuf,
    file: File,
    pub boot: Partition,
}

impl Image {
    pub fn open(path: &Path, writable: bool) -> Result<Image, ProvisionError> {
        let bad = |problem: String| ProvisionError::Image {
            path: path.to_path_buf(),
            problem,
        };
        let mut file = File::options()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| bad(e.to_string()))?;
        // A block device's metadata says 0: its size is where its end is.
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| bad(e.to_string()))?;
        let mut first = Vec::with_capacity(512);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| (&file).take(512).read_to_end(&mut first))
            .map_err(|e| bad(e.to_string()))?;
        let parts = mbr::parse(&first, len).map_err(|e| bad(e.to_string()))?;
        let boot = parts.iter().find(|p| p.is_fat()).copied().ok_or_else(|| {
            bad("no FAT boot partition in its table: is it a Raspberry Pi OS image?".into())
        })?;
        // Never written, but an image without one is not what the user thinks it is.
        if !parts.iter().any(|p| p.is_linux()) {
            return Err(bad(
                "no Linux root partition in its table: is it a Raspberry Pi OS image?".into(),
            ));
        }
        Ok(Image {
            path: path.to_path_buf(),
            file,
            boot,
        })
    }

    /// Runs `f` on the boot partition's file system, unmounted after (which writes its
    /// free-space hint when it changed).
    pub fn with_fs<T>(
        &self,
        f: impl FnOnce(&Fs<'_>) -> Result<T, ProvisionError>,
    ) -> Result<T, ProvisionError> {
        let slice = Slice::new(&self.file, self.boot.start, self.boot.len);
        let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())
            .map_err(|e| self.fat_error("its boot partition is not a FAT file system", e))?;
        let out = f(&fs)?;
        fs.unmount()
            .map_err(|e| self.fat_error("closing the boot partition", e))?;
        Ok(out)
    }

    pub fn fat_error(&self, what: &str, e: io::Error) -> ProvisionError {
        ProvisionError::Image {
            path: self.path.clone(),
            problem: format!("{what}: {e}"),
        }
    }

    /// Flushes what was written to the image or device.
    pub fn sync(&self) -> Result<(), ProvisionError> {
        self.file
            .sync_all()
            .map_err(|e| self.fat_error("syncing", e))
    }
}

/// A small text file at `path` in `dir`, or none.
pub fn read_text(dir: &Dir<'_, '_>, path: &str) -> io::Result<Option<String>> {
    let mut file = match dir.open_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    (&mut file).take(TEXT_MAX + 1).read_to_end(&mut text)?;
    if text.len() as u64 > TEXT_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is larger than {TEXT_MAX} bytes"),
        ));
    }
    String::from_utf8(text)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path} is not text")))
}

/// Those of `names` that are files in `dir`, with their sizes (as the directory spells
/// them: FAT's names are case-insensitive).
pub fn existing(dir: &Dir<'_, '_>, names: &[&str]) -> io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in dir.iter().take(DIR_ENTRIES_MAX) {
        let entry = entry?;
        let file_name = entry.file_name();
        if entry.is_file() && names.iter().any(|n| n.eq_ignore_ascii_case(&file_name)) {
            out.push((file_name, entry.len()));
        }
    }
    Ok(out)
}

/// Bytes free for new files, counting what the files of `replaced` will give back.
pub fn free_bytes(fs: &Fs<'_>, replaced: &[(String, u64)]) -> io::Result<u64> {
    let stats = fs.stats()?;
    let cluster = u64::from(stats.cluster_size());
    let freed: u64 = replaced
        .iter()
        .map(|(_, len)| len.div_ceil(cluster) * cluster)
        .sum();
    Ok(u64::from(stats.free_clusters()) * cluster + freed)
}

/// The clusters `len` bytes take.
pub fn on_disk(fs: &Fs<'_>, len: u64) -> io::Result<u64> {
    let cluster = u64::from(fs.stats()?.cluster_size());
    Ok(len.div_ceil(cluster) * cluster)
}

/// Writes `data` as `name` in `dir`, replacing what was there.
pub fn write_file(dir: &Dir<'_, '_>, name: &str, data: &mut dyn Read) -> io::Result<()> {
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    io::copy(data, &mut file)?;
    file.flush()
}
