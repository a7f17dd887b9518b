//! Container IDs (64 hex digits, random) and names (`adjective_noun`, as Docker makes them).

use std::io::Read;

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "eager", "fond", "gentle", "happy", "keen",
    "lucid", "merry", "nimble", "quiet", "steady", "swift", "tender", "trusty", "vivid", "wise",
];
const NOUNS: &[&str] = &[
    "acorn", "badger", "beacon", "birch", "bramble", "falcon", "fern", "finch", "heron", "juniper",
    "kestrel", "lark", "maple", "otter", "pebble", "pine", "robin", "sparrow", "thistle", "wren",
];

fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

pub fn new_id() -> std::io::Result<String> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A free `adjective_noun` name, with a number after it once the pairs run short.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    let pick = |r: u8, list: &[&'static str]| list[r as usize % list.len()];
    for attempt in 0u32.. {
        let r = random_bytes::<2>().unwrap_or([attempt as u8, (attempt >> 8) as u8]);
        let mut name = format!("{}_{}", pick(r[0], ADJECTIVES), pick(r[1], NOUNS));
        if attempt >= 20 {
            name.push_str(&(attempt - 19).to_string());
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns once a name is free")
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(
            super::valid("web-1")
                && !super::valid("-x")
                && !super::valid("a b")
                && !super::valid("a")
        );
        let n = super::generate(|_| false);
        assert!(super::valid(&n) && n.contains('_'));
        assert_eq!(super::new_id().unwrap().len(), 64);
    }
}
